package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
)

// The end-to-end tests build the real binary once and drive it over HTTP
// and its command line, as an operator and a phone would.

// e2eTimeout bounds every command and HTTP call of the end-to-end tests,
// so a stuck process fails its test instead of stalling the whole package.
const e2eTimeout = 3 * time.Minute

// e2eHTTP is the tests' HTTP client: never without a deadline.
var e2eHTTP = &http.Client{Timeout: 30 * time.Second}

// e2eCommand is exec.Command bounded by e2eTimeout.
func e2eCommand(bin string, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 10 * time.Second
	return cmd, cancel
}

// e2eAvoidHourBoundary waits past the next full hour when it is closer than
// margin: stored times are truncated to the hour, and a test that uploads
// and then exports "this hour's window" must not straddle two hours.
func e2eAvoidHourBoundary(t *testing.T, margin time.Duration) {
	t.Helper()
	if wait := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); wait < margin {
		t.Logf("waiting %v for the hour to turn", wait.Round(time.Second))
		time.Sleep(wait + time.Second)
	}
}

var e2eBuild = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "candor-e2e-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "candor")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func e2eBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	bin, err := e2eBuild()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// e2eServer is a running `candor serve`.
type e2eServer struct {
	t    *testing.T
	bin  string
	data string
	url  string
	// metrics is the base URL of the operator's metrics listener.
	metrics string
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	stdout  *lockedBuffer
	// exited is closed when the process has exited; waitErr is then its result.
	exited  chan struct{}
	waitErr error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startE2EServer starts `candor serve` on a free loopback port with data in
// dir (a new temp dir when empty) and waits until it is healthy.
func startE2EServer(t *testing.T, dir string, extra ...string) *e2eServer {
	t.Helper()
	bin := e2eBinary(t)
	if dir == "" {
		dir = t.TempDir()
	}
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	s := &e2eServer{t: t, bin: bin, data: dir, url: "http://" + addr, metrics: "http://" + metricsAddr, stderr: &lockedBuffer{}, stdout: &lockedBuffer{}, exited: make(chan struct{})}
	args := append([]string{"serve", "--data", dir, "--addr", addr, "--metrics-addr", metricsAddr, "--log-level", "debug"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited: // already exited (stop or crash)
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := e2eHTTP.Get(s.url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited: %v\n%s", s.waitErr, s.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("server not healthy\n%s", s.stderr.String())
	return nil
}

// stop sends sig and waits for the process to exit.
func (s *e2eServer) stop(sig os.Signal) error {
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(40 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("server did not stop on %v", sig)
	}
}

// run runs a candor subcommand and returns its stdout.
func (s *e2eServer) run(args ...string) (string, error) {
	cmd, cancel := e2eCommand(s.bin, args...)
	defer cancel()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("candor %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (s *e2eServer) postJSON(path string, body any, header map[string]string) (int, []byte) {
	s.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		s.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// e2eAuthority is a verification server stand-in: a signing key whose
// public half is registered with `candor admin authority add`.
type e2eAuthority struct {
	priv *ecdsa.PrivateKey
	iss  string
	aud  string
	kid  string
	app  string
}

func addE2EAuthority(t *testing.T, s *e2eServer) *e2eAuthority {
	t.Helper()
	a := &e2eAuthority{iss: "e2e.example.gov", aud: "e2e.keyserver", kid: "v1", app: "gov.example.e2e"}
	var err error
	if a.priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	pemText, _ := api.MarshalPublicKeyPEM(&a.priv.PublicKey)
	pemFile := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(pemFile, []byte(pemText), 0o600)
	if _, err := s.run("admin", "authority", "add", "--data", s.data, "--issuer", a.iss, "--audience", a.aud, "--key-version", a.kid, "--public-key", pemFile); err != nil {
		t.Fatal(err)
	}
	if _, err := s.run("admin", "app", "add", "--data", s.data, "--id", a.app, "--authority", a.iss, "--region", "US-E2E"); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *e2eAuthority) publish(t *testing.T, keys []api.ExposureKey, reportType, revisionToken string) *api.Publish {
	secret := make([]byte, 32)
	rand.Read(secret)
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"reportType": reportType,
		"tekmac":     base64.StdEncoding.EncodeToString(api.TEKMAC(secret, keys, true)),
		"iss":        a.iss, "aud": a.aud,
		"iat": now.Add(-5 * time.Second).Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "exp": now.Add(15 * time.Minute).Unix(),
	})
	tok.Header["kid"] = a.kid
	cert, err := tok.SignedString(a.priv)
	if err != nil {
		t.Fatal(err)
	}
	return &api.Publish{Keys: keys, HealthAuthorityID: a.app, VerificationPayload: cert,
		HMACKey: base64.StdEncoding.EncodeToString(secret), RevisionToken: revisionToken}
}

func e2eKeys(n int) []api.ExposureKey {
	today := keyserver.IntervalNumber(time.Now())
	today -= today % 144
	keys := make([]api.ExposureKey, n)
	for i := range keys {
		b := make([]byte, 16)
		rand.Read(b)
		keys[i] = api.ExposureKey{Key: base64.StdEncoding.EncodeToString(b), IntervalNumber: today - int32(n-1-i)*144, IntervalCount: 144, TransmissionRisk: 1 + i%8}
	}
	return keys
}

func decodePublish(t *testing.T, b []byte) api.PublishResponse {
	t.Helper()
	var r api.PublishResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("publish response %q: %v", b, err)
	}
	return r
}

// TestE2EPublish: an authority added with the operator commands while the
// server runs; a publish with its certificate stores keys and returns a
// revision token; a revision works; acknowledged keys survive kill -9; and
// no client address appears in logs or metrics.
func TestE2EPublish(t *testing.T) {
	s := startE2EServer(t, "")
	a := addE2EAuthority(t, s)

	keys := e2eKeys(14)
	status, body := s.postJSON(api.PublishPath, a.publish(t, keys, api.ReportTypeLikely, ""), nil)
	r := decodePublish(t, body)
	if status != 200 || r.InsertedExposures != 14 || r.RevisionToken == "" || len(r.Padding) < 1024 {
		t.Fatalf("publish: %d %s", status, body)
	}
	// Same keys again without the token: refused.
	status, body = s.postJSON(api.PublishPath, a.publish(t, keys, api.ReportTypeConfirmed, ""), nil)
	if status != 400 || decodePublish(t, body).Code != api.CodeMissingRevisionToken {
		t.Fatalf("re-upload without token: %d %s", status, body)
	}
	// With the token: revised to confirmed.
	status, body = s.postJSON(api.PublishPath, a.publish(t, keys, api.ReportTypeConfirmed, r.RevisionToken), nil)
	if status != 200 {
		t.Fatalf("revision: %d %s", status, body)
	}
	// Chaff looks like success and stores nothing.
	status, body = s.postJSON(api.PublishPath, a.publish(t, e2eKeys(3), api.ReportTypeConfirmed, ""), map[string]string{"X-Chaff": "1"})
	if status != 200 || decodePublish(t, body).RevisionToken == "" {
		t.Fatalf("chaff: %d %s", status, body)
	}

	// kill -9 right after an acknowledged publish: the keys are durable.
	more := e2eKeys(5)
	if status, body := s.postJSON(api.PublishPath, a.publish(t, more, api.ReportTypeConfirmed, ""), nil); status != 200 {
		t.Fatalf("publish before kill: %d %s", status, body)
	}
	metrics := httpGet(t, s.metrics+"/metrics")
	s.stop(syscall.SIGKILL)
	logs := s.stderr.String()

	s2 := startE2EServer(t, s.data)
	status, body = s2.postJSON(api.PublishPath, a.publish(t, more, api.ReportTypeConfirmed, ""), nil)
	if status != 400 || decodePublish(t, body).Code != api.CodeMissingRevisionToken {
		t.Fatalf("after kill -9 the acknowledged keys are gone: %d %s", status, body)
	}
	if err := s2.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}

	// Privacy: the loopback client address never reaches logs or metrics.
	for name, text := range map[string]string{"logs": logs + s2.stderr.String(), "metrics": metrics} {
		if strings.Contains(text, "127.0.0.1") || strings.Contains(text, "remote_ip") {
			t.Errorf("%s contain a client address:\n%s", name, text)
		}
	}
	if !strings.Contains(metrics, `candor_publish_requests_total{code="ok"}`) || !strings.Contains(metrics, `candor_http_requests_total{method="POST",route="/v1/publish",status="200"}`) {
		t.Errorf("metrics lack publish counters:\n%s", grepLines(metrics, "candor_"))
	}
}

// TestE2EGracefulShutdown: SIGTERM lets in-flight publishes finish.
func TestE2EGracefulShutdown(t *testing.T) {
	s := startE2EServer(t, "")
	a := addE2EAuthority(t, s)
	const n = 40
	reqs := make([]*api.Publish, n)
	for i := range reqs {
		reqs[i] = a.publish(t, e2eKeys(14), api.ReportTypeConfirmed, "")
	}
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, p := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(p)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+api.PublishPath, bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0 // refused after shutdown began: never acknowledged
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM exit: %v", err)
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 0 && st != 200 {
			t.Errorf("in-flight publish answered %d during shutdown", st)
		}
	}
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("no shutdown log")
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := e2eHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(text, substr string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, "\n")
}
