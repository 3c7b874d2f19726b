package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/storage/redis/redistest"
)

// The operator surface under attack: what the public port shows, who can
// reach the data directory and its socket, what the log's origin tells,
// and whether a replica whose store is gone leaves the load balancer.

// TestE2EMetricsNotOnPublicPort: an observer reading the decoy and key
// counters before and after an upload would learn whether it was real and
// how many keys it carried, so the public port has no /metrics; the
// operator's listener (--metrics-addr) has them.
func TestE2EMetricsNotOnPublicPort(t *testing.T) {
	s := startE2EServer(t, "")
	req, _ := http.NewRequest(http.MethodPost, s.url+api.PublishPath, strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ChaffHeader, "1")
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for _, path := range []string{"/metrics", "/metrics/", "/metrics?format=text", "/debug/pprof/"} {
		res, body := expGet(t, s.url+path)
		if res.StatusCode != http.StatusNotFound || strings.Contains(string(body), "candor_") {
			t.Errorf("public GET %s: %d %.200s, want 404", path, res.StatusCode, body)
		}
	}
	res, body := expGet(t, s.metrics+"/metrics")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `candor_publish_requests_total{code="chaff"} 1`) {
		t.Errorf("metrics listener: %d\n%s", res.StatusCode, grepLines(string(body), "candor_publish"))
	}
	if want := "metrics (operator):    " + s.metrics + "/metrics"; !strings.Contains(s.stdout.String(), want) {
		t.Errorf("the banner does not say %q:\n%s", want, s.stdout.String())
	}
	if res, _ := expGet(t, s.url+"/ready"); res.StatusCode != http.StatusOK {
		t.Errorf("/ready on the embedded store: %d", res.StatusCode)
	}
}

// TestE2EDataDirPermissions: the operator socket's only authentication is
// that nobody else can reach it, and the data directory holds the store
// and by default the master key. A data directory that others can enter is
// refused, saying how to fix it; a new one is created 0700 even under
// umask 000, with the socket 0600 inside it.
func TestE2EDataDirPermissions(t *testing.T) {
	bin := e2eBinary(t)
	for _, tc := range []struct {
		name string
		mode os.FileMode
		args []string
	}{
		{"serve, world-readable", 0o755, []string{"serve"}},
		{"serve, group-readable", 0o750, []string{"serve"}},
		{"serve, world-writable", 0o777, []string{"serve"}},
		{"serve, others may enter", 0o701, []string{"serve"}},
		{"operator command, no server", 0o755, []string{"admin", "realm", "list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			args := append(tc.args, "--data", dir)
			if tc.args[0] == "serve" {
				args = append(args, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
			}
			// Bounded: a server that does not refuse would run on.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var outb, errb bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Stdout, cmd.Stderr = &outb, &errb
			err := cmd.Run()
			out := outb.String()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("candor %s on a %04o data directory succeeded:\n%s", strings.Join(tc.args, " "), tc.mode, out)
			}
			if want := "run `chmod 700 " + dir + "`"; !strings.Contains(errb.String(), want) {
				t.Errorf("the refusal does not say %q: %v\n%s", want, err, errb.String())
			}
			for _, name := range []string{AdminSocketName, "candor.db", "master.key"} {
				if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
					t.Errorf("%s was created in the refused directory", name)
				}
			}
		})
	}

	t.Run("new data directory under umask 000", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "fresh", "data")
		addr := freeAddr(t)
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", `umask 000 && exec "$0" "$@"`, bin, "serve", "--data", dir, "--addr", addr, "--metrics-addr", "127.0.0.1:0")
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}()
		waitHTTP(t, "http://"+addr+"/health", http.StatusOK, &stderr)
		for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, AdminSocketName): 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s: mode %04o, want %04o", path, got, want)
			}
		}
	})
}

// waitHTTP polls url until it answers status, for up to 30 s.
func waitHTTP(t *testing.T, url string, status int, logs *lockedBuffer) {
	t.Helper()
	last := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := e2eHTTP.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if last = resp.StatusCode; last == status {
			return
		}
	}
	t.Fatalf("GET %s: %d, want %d\n%s", url, last, status, logs.String())
}

// TestE2ELogOrigin: the log's origin is public and permanent, so it is
// never the machine's host name: it comes from --tlog-origin, else the
// host of --public-url, else "localhost", and the first start says which.
func TestE2ELogOrigin(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name, want, source string
		args               []string
	}{
		{"public URL", "en.example.test/candor/data-use/v1", "the host of --public-url", []string{"--public-url", "https://en.example.test"}},
		{"no public URL", "localhost/candor/data-use/v1", "no --public-url was given", nil},
		{"explicit origin", "log.example.test/data-use", "--tlog-origin", []string{"--public-url", "https://en.example.test", "--tlog-origin", "log.example.test/data-use"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := startE2EServer(t, dir, tc.args...)
			checkOrigin := func(s *e2eServer) {
				t.Helper()
				waitHTTP(t, s.url+"/log/checkpoint", http.StatusOK, s.stderr)
				origin, _, _ := strings.Cut(httpGet(t, s.url+"/log/checkpoint"), "\n")
				if origin != tc.want {
					t.Errorf("origin %q, want %q", origin, tc.want)
				}
				if host != "" && host != "localhost" && strings.Contains(origin, host) {
					t.Errorf("origin %q holds the host name %q", origin, host)
				}
			}
			checkOrigin(s)
			said := "First start: created the transparency log with the origin " + tc.want + " (" + tc.source
			if !strings.Contains(s.stdout.String(), said) {
				t.Errorf("the first start does not say %q:\n%s", said, s.stdout.String())
			}
			if tc.args != nil {
				return
			}
			// Restarted with a public URL: the log keeps its origin, and
			// nothing claims a first start.
			if err := s.stop(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			s = startE2EServer(t, dir, "--public-url", "https://other.example.test")
			checkOrigin(s)
			if strings.Contains(s.stdout.String(), "created the transparency log") {
				t.Errorf("a restart says it created the log:\n%s", s.stdout.String())
			}
		})
	}

	// An operator command run before any server creates the log, with the
	// origin the server's environment gives.
	t.Run("operator command first", func(t *testing.T) {
		dir := t.TempDir()
		cmd, cancel := e2eCommand(e2eBinary(t), "admin", "realm", "list", "--data", dir)
		defer cancel()
		cmd.Env = append(os.Environ(), "CANDOR_PUBLIC_URL=https://ops.example.test")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("admin realm list: %v\n%s", err, out)
		}
		s := startE2EServer(t, dir, "--public-url", "https://ops.example.test")
		waitHTTP(t, s.url+"/log/checkpoint", http.StatusOK, s.stderr)
		if origin, _, _ := strings.Cut(httpGet(t, s.url+"/log/checkpoint"), "\n"); origin != "ops.example.test/candor/data-use/v1" {
			t.Errorf("origin %q after an operator command with CANDOR_PUBLIC_URL", origin)
		}
	})
}

// TestE2EReadyFollowsRedis: a replica whose Redis is frozen (SIGSTOP) or
// gone (SIGKILL) answers every publish with an error, so /ready answers
// 503 — without waiting for the frozen store — while /health, the
// liveness probe, stays 200; when Redis is back, /ready is 200 again.
func TestE2EReadyFollowsRedis(t *testing.T) {
	e2eBinary(t)
	rs := redistest.Start(t, "--appendonly", "yes")
	s := startE2EServer(t, "", "--store", "redis://"+rs.Addr+"/0")
	waitHTTP(t, s.url+"/ready", http.StatusOK, s.stderr)

	info, err := rs.Client(t).Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`process_id:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no process_id in INFO server:\n%s", info)
	}
	pid, _ := strconv.Atoi(m[1])

	// notReady: /ready answers 503 well before the store's own timeouts
	// (3 s per try, with retries) and /health stays 200.
	notReady := func(what string) {
		t.Helper()
		start := time.Now()
		res, body := expGet(t, s.url+"/ready")
		if took := time.Since(start); res.StatusCode != http.StatusServiceUnavailable || took > 5*time.Second {
			t.Errorf("%s: /ready answered %d %s after %v, want 503 within 5 s", what, res.StatusCode, bytes.TrimSpace(body), took.Round(time.Millisecond))
		} else {
			t.Logf("%s: /ready answered 503 after %v", what, took.Round(time.Millisecond))
		}
		if res, _ := expGet(t, s.url+"/health"); res.StatusCode != http.StatusOK {
			t.Errorf("%s: /health answered %d, want 200 (liveness)", what, res.StatusCode)
		}
	}

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	notReady("Redis frozen")
	notReady("Redis still frozen") // a second probe while the first check hangs
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, s.url+"/ready", http.StatusOK, s.stderr)

	rs.Kill()
	notReady("Redis stopped")
	rs.Restart(t)
	waitHTTP(t, s.url+"/ready", http.StatusOK, s.stderr)
	if !strings.Contains(s.stderr.String(), "not ready") || !strings.Contains(s.stderr.String(), "ready again") {
		t.Errorf("the changes of readiness are not logged:\n%s", grepLines(s.stderr.String(), "ready"))
	}
}

// TestE2EBadFlagsOpenNothing: a mistake in a flag that needs no store is
// reported before the data directory, the store or any key is created, so a
// typo cannot leave a half-initialised deployment (or a log origin fixed by
// a start that was refused).
func TestE2EBadFlagsOpenNothing(t *testing.T) {
	bin := e2eBinary(t)
	for _, tc := range []struct{ flag, value, want string }{
		{"--trusted-proxies", "10.0.0.0/8,bogus", "--trusted-proxies"},
		{"--public-url", "ftp://example.org", "--public-url"},
		{"--app-link", "https://example.org/no-code", "--app-link"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			_, err := runCandor(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--metrics-addr", "", tc.flag, tc.value)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve %s %s: %v, want a refusal naming %s", tc.flag, tc.value, err, tc.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("the refused start created %s (%v)", data, err)
			}
		})
	}
}
