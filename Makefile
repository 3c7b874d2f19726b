# Candor — common tasks. `make run` starts everything; `make test` runs every test.
GO      ?= go
DATA    ?= ./data
ADDR    ?= 127.0.0.1:8080
BIN     := bin/candor
# staticcheck, pinned: .ci/run installs this version.
STATICCHECK ?= $(shell command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck)
STATICCHECK_VERSION := v0.8.2

.PHONY: run build test test-short bench lint fuzz clean cluster cluster-stop cluster-status

run: build
	$(BIN) serve --data $(DATA) --addr $(ADDR)

# A local multi-process cluster on loopback: Redis, two key servers, two
# verification servers, an exporter, a log writer and nginx (deploy/local).
cluster: build
	deploy/local/cluster.sh start

cluster-stop:
	deploy/local/cluster.sh stop

cluster-status:
	deploy/local/cluster.sh status

build:
	$(GO) build -o $(BIN) ./cmd/candor

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 40m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench: build
	$(BIN) loadtest --spawn --mode publish,verify,download --concurrency 64,2048 --duration 10s --report docs/PERFORMANCE.md

# Without staticcheck, lint says how to install it and goes on, except under
# CI=true, where a missing tool fails (as the tests that need outside programs do).
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	@if [ -x "$(STATICCHECK)" ]; then echo "$(STATICCHECK) ./..."; "$(STATICCHECK)" ./...; \
	elif [ "$$CI" = true ]; then echo "staticcheck missing: go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)"; exit 1; \
	else echo "staticcheck skipped: go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)"; fi

fuzz:
	$(GO) test -run x -fuzz FuzzPublishDecode -fuzztime 30s ./keyserver/
	$(GO) test -run x -fuzz FuzzListings -fuzztime 30s ./api/export/

clean:
	rm -rf bin
