# Candor — common tasks. `make run` starts everything; `make test` runs every test.
GO      ?= go
DATA    ?= ./data
ADDR    ?= 127.0.0.1:8080
BIN     := bin/candor

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

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

fuzz:
	$(GO) test -run x -fuzz FuzzPublishDecode -fuzztime 30s ./keyserver/

clean:
	rm -rf bin
