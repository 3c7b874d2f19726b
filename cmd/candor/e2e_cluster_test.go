package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/storage/redis/redistest"
)

// clusterTool returns the path of a program the local cluster needs: a
// test fails under CI when it is missing and is skipped elsewhere, saying
// what to install.
func clusterTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		msg := name + " is not installed: apt-get install " + pkg
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// freePortRange returns a port p such that p … p+n−1 are free on loopback.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + int(time.Now().UnixNano()%20000)
		ok := true
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// localCluster is deploy/local/cluster.sh run by a test.
type localCluster struct {
	t         *testing.T
	bin, dir  string
	url       string
	redisPort int
	env       []string
}

func (c *localCluster) script(args ...string) (string, error) {
	// Output to a file, not a pipe: the processes the script starts in
	// the background must not keep the test waiting for the pipe's end.
	f, err := os.CreateTemp(c.dir, "script-*.out")
	if err != nil {
		return "", err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../../deploy/local/cluster.sh", args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return string(out), err
}

// data is the data directory of one of the cluster's processes.
func (c *localCluster) data(name string) string { return filepath.Join(c.dir, name) }

func (c *localCluster) candor(args ...string) string {
	c.t.Helper()
	out, err := runCandor(c.bin, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func startLocalCluster(t *testing.T) *localCluster {
	t.Helper()
	bin := e2eBinary(t)
	redisServer := redistest.Binary(t)
	nginx := clusterTool(t, "nginx", "nginx")
	port, metricsPort := freePortRange(t, 7), freePortRange(t, 7)
	c := &localCluster{t: t, bin: bin, dir: t.TempDir(), url: "http://127.0.0.1:" + strconv.Itoa(port), redisPort: freePortRange(t, 1)}
	c.env = []string{
		"CLUSTER_DIR=" + c.dir, "CLUSTER_PORT=" + strconv.Itoa(port), "CLUSTER_METRICS_PORT=" + strconv.Itoa(metricsPort), "CLUSTER_REDIS_PORT=" + strconv.Itoa(c.redisPort),
		"CLUSTER_BIN=" + bin, "REDIS_SERVER=" + redisServer, "NGINX_BIN=" + nginx,
		// The test's load comes from one address.
		"CANDOR_RATE_LIMIT_PER_ADDRESS=0",
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"keyserver-1", "keyserver-2", "verification-1", "verification-2", "exporter", "log"} {
				b, _ := os.ReadFile(filepath.Join(c.dir, name, "stderr.log"))
				t.Logf("%s stderr:\n%s", name, grepLines(string(b), "level"))
			}
		}
		if out, err := c.script("stop"); err != nil {
			t.Errorf("cluster stop: %v\n%s", err, out)
		}
	})
	if out, err := c.script("start"); err != nil {
		t.Fatalf("cluster start: %v\n%s", err, out)
	}
	return c
}

// TestE2ECluster: `make cluster`'s script starts Redis, two key servers,
// two verification servers, an exporter, a log writer and nginx; a phone
// journey passes through the proxy, its export reaches the log through the
// outbox; then a key server killed with SIGKILL in the middle of a publish
// load loses no acknowledged publish, and the load goes on through the
// other.
func TestE2ECluster(t *testing.T) {
	e2eAvoidHourBoundary(t, 3*time.Minute)
	c := startLocalCluster(t)
	ctx := context.Background()

	// Operators use each role's socket: realms and API keys on a
	// verification server, the export configuration on the exporter.
	c.candor("admin", "realm", "add", "--data", c.data("verification-1"), "--name", pjRealm, "--region", pjRegion)
	adminKey := strings.TrimSpace(c.candor("admin", "apikey", "add", "--data", c.data("verification-2"), "--realm", pjRealm, "--kind", "admin"))
	deviceKey := strings.TrimSpace(c.candor("admin", "apikey", "add", "--data", c.data("verification-1"), "--realm", pjRealm, "--kind", "device"))
	c.candor("admin", "export", "add", "--data", c.data("exporter"), "--root", pjRoot, "--region", pjRegion,
		"--key-id", "310", "--key-version", "v1", "--min-keys", "100")
	if _, err := runCandor(c.bin, "admin", "export", "list", "--data", c.data("keyserver-1")); err == nil || !strings.Contains(err.Error(), "does not run the exporter role") {
		t.Errorf("export list on a key server: %v", err)
	}

	// The phone journey, through nginx.
	states := t.TempDir()
	state := func(name string) string { return filepath.Join(states, name+".json") }
	for _, p := range []string{"a", "b"} {
		c.candor("phone", "keys", "--state", state(p), "--server", c.url, "--api-key", deviceKey, "--app", pjApp, "--exports-root", pjRoot)
	}
	met := time.Now().UTC().AddDate(0, 0, -1).Truncate(24 * time.Hour).Add(12 * time.Hour).Format(time.RFC3339)
	c.candor("phone", "encounter", "--state", state("b"), "--with", state("a"), "--minutes", "30", "--at", met)
	cl, err := client.New(c.url)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := cl.Issue(ctx, adminKey, &api.IssueCodeRequest{TestType: api.TestTypeLikely, SymptomDate: time.Now().UTC().AddDate(0, 0, -2).Format(time.DateOnly)})
	if err != nil {
		t.Fatal(err)
	}
	out := c.candor("phone", "report", "--state", state("a"), "--code", issued.VerificationCode)
	if !strings.Contains(out, "uploaded 14 keys: 14 stored") {
		t.Fatalf("report: %s", out)
	}
	at := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + 16*time.Minute)
	out = c.candor("export", "run", "--data", c.data("exporter"), "--now", at.Format(time.RFC3339), "--allow-future")
	if !regexp.MustCompile(pjRoot + `: 1 batches, 1 files \(13 keys`).MatchString(out) {
		t.Fatalf("export run: %s", out)
	}
	out = c.candor("phone", "sync", "--state", state("b"), "--trust-server-keys")
	if !strings.Contains(out, "exposures on 1 day(s):") || !strings.Contains(out, "30 min") {
		t.Fatalf("B sync: %s", out)
	}
	// The exporter runs without the log: its event crossed the outbox to
	// the log writer.
	clusterWaitLogged(t, c, "export.published")

	// With no server on a data directory, operator commands open the
	// store that --store names.
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", c.redisPort)
	if _, err := runCandor(c.bin, "admin", "realm", "list", "--data", t.TempDir(), "--store", redisURL); err == nil || !strings.Contains(err.Error(), "give every process the same --master-key") {
		t.Errorf("direct command without the master key: %v", err)
	}
	out = c.candor("admin", "realm", "list", "--data", t.TempDir(), "--store", redisURL, "--master-key", filepath.Join(c.dir, "master.key"))
	if !strings.Contains(out, pjRegion) {
		t.Errorf("realm list through the store: %s", out)
	}

	// SIGKILL a key server in the middle of a publish load.
	s := &e2eServer{t: t, bin: c.bin, data: c.data("keyserver-1"), url: c.url}
	auth := addE2EAuthority(t, s)
	type acked struct{ keys []api.ExposureKey }
	var (
		mu                        sync.Mutex
		ok                        []acked
		failed, okBefore, okAfter atomic.Int64
		killed                    atomic.Bool
		stop                      = make(chan struct{})
		wg                        sync.WaitGroup
		httpc                     = &http.Client{Timeout: 10 * time.Second}
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				keys := e2eKeys(14)
				body, _ := json.Marshal(auth.publish(t, keys, api.ReportTypeConfirmed, ""))
				resp, err := httpc.Post(c.url+api.PublishPath, "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				mu.Lock()
				ok = append(ok, acked{keys})
				mu.Unlock()
				if killed.Load() {
					okAfter.Add(1)
				} else {
					okBefore.Add(1)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if out, err := c.script("kill", "keyserver-1"); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	killed.Store(true)
	time.Sleep(2500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("publishes acknowledged: %d before the kill, %d after; %d failed", okBefore.Load(), okAfter.Load(), failed.Load())
	if okBefore.Load() == 0 || okAfter.Load() < 10 {
		t.Fatalf("the load did not go on through the other key server: %d before, %d after", okBefore.Load(), okAfter.Load())
	}
	// Every acknowledged publish is in the store.
	store, err := redis.Open(ctx, fmt.Sprintf("redis://127.0.0.1:%d/0", c.redisPort))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lost := 0
	for _, a := range ok {
		for _, k := range a.keys {
			raw, _ := base64.StdEncoding.DecodeString(k.Key)
			var key [16]byte
			copy(key[:], raw)
			if _, err := store.Exposure(ctx, key); err != nil {
				lost++
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d keys of %d acknowledged publishes lost", lost, len(ok))
	}
}

// clusterWaitLogged waits until the cluster's transparency log holds an
// entry of the type.
func clusterWaitLogged(t *testing.T, c *localCluster, entryType string) {
	t.Helper()
	ctx := context.Background()
	vkey := strings.TrimSpace(httpGet(t, c.url+"/transparency/key"))
	lc, err := client.New(c.url, client.WithLogKey(vkey))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		cp, err := lc.LogCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := lc.LogEntries(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			var head struct{ Type string }
			if json.Unmarshal(e, &head) == nil && head.Type == entryType {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s entry in the log after 20 s (%d entries)", entryType, len(entries))
		}
	}
}

// TestE2ERateLimits: the embedded server bounds requests per address (in
// memory), answers the X-RateLimit headers, and 429 with Retry-After in each
// API's error format.
func TestE2ERateLimits(t *testing.T) {
	s := startE2EServer(t, "", "--rate-limit-per-address", "3", "--rate-limit-per-admin-key", "2", "--log-level", "warn")
	post := func(path, key string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set(api.APIKeyHeader, key)
		}
		resp, err := e2eHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := range 3 {
		resp := post(api.PublishPath, "")
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests || resp.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) || resp.Header.Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("publish %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	resp := post(api.PublishPath, "")
	var pr api.PublishResponse
	json.NewDecoder(resp.Body).Decode(&pr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || pr.Code != api.ErrRateLimited || pr.Padding == "" {
		t.Fatalf("4th publish: %d %v %+v", resp.StatusCode, resp.Header, pr)
	}
	// Per admin key, in the /api error format.
	for range 2 {
		post(api.IssuePath, "ca_some-key").Body.Close()
	}
	resp = post(api.IssuePath, "ca_some-key")
	var er api.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&er)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || er.ErrorCode != api.ErrRateLimited || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd issue with one key: %d %+v", resp.StatusCode, er)
	}
	// Reads are not bounded.
	for range 5 {
		if body := httpGet(t, s.url+"/health"); !strings.Contains(body, "ok") {
			t.Fatalf("health: %s", body)
		}
	}
}
