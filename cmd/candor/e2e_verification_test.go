package main

import (
	"bytes"
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
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/verification"
)

// e2eRealm is a realm added with `candor admin realm add`, with keys from
// `candor admin apikey add`.
type e2eRealm struct {
	name, app     string
	admin, device string
}

func addE2ERealm(t *testing.T, bin, data, name, region string, extra ...string) *e2eRealm {
	t.Helper()
	out, err := runCandor(bin, append([]string{"admin", "realm", "add", "--data", data, "--name", name, "--region", region}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`app \(healthAuthorityID\)\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("realm add printed no app:\n%s", out)
	}
	r := &e2eRealm{name: name, app: m[1]}
	r.admin = addE2EAPIKey(t, bin, data, name, "admin")
	r.device = addE2EAPIKey(t, bin, data, name, "device")
	return r
}

// addE2EAPIKey runs `apikey add` and checks that stdout is the key alone.
func addE2EAPIKey(t *testing.T, bin, data, realm, kind string) string {
	t.Helper()
	out, err := runCandor(bin, "admin", "apikey", "add", "--data", data, "--realm", realm, "--kind", kind)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^c[ad]_[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
		t.Fatalf("apikey add stdout is not the key alone: %q", out)
	}
	return strings.TrimSpace(out)
}

func runCandor(bin string, args ...string) (string, error) {
	cmd, cancel := e2eCommand(bin, args...)
	defer cancel()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("candor %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// call posts body to path with the API key and decodes the answer into a map.
func (s *e2eServer) call(path, key string, body any) (int, map[string]any) {
	s.t.Helper()
	status, raw := s.postJSON(path, body, map[string]string{api.APIKeyHeader: key})
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		s.t.Fatalf("%s answered %d %q", path, status, raw)
	}
	return status, m
}

func (s *e2eServer) wantError(path, key string, body any, status int, code string) {
	s.t.Helper()
	got, m := s.call(path, key, body)
	if got != status || m["errorCode"] != code {
		s.t.Fatalf("%s: %d %v, want %d %s", path, got, m["errorCode"], status, code)
	}
}

// flow issues a code, redeems it, gets a certificate for fresh keys and
// returns the publish request a phone would send.
func (s *e2eServer) flow(r *e2eRealm, useLong bool) *api.Publish {
	s.t.Helper()
	status, issued := s.call(api.IssuePath, r.admin, api.IssueCodeRequest{
		TestType: "confirmed", SymptomDate: time.Now().UTC().AddDate(0, 0, -3).Format("2006-01-02"), TZOffset: 120,
		Phone: "+12065550123",
	})
	if status != 200 {
		s.t.Fatalf("issue: %d %v", status, issued)
	}
	code := issued["code"].(string)
	if useLong {
		code = issued["longCode"].(string)
	}
	status, verified := s.call(api.VerifyPath, r.device, api.VerifyCodeRequest{VerificationCode: code, AcceptTestTypes: []string{"confirmed"}})
	if status != 200 || verified["testtype"] != "confirmed" {
		s.t.Fatalf("verify: %d %v", status, verified)
	}
	keys := e2eKeys(14)
	secret := make([]byte, 32)
	rand.Read(secret)
	mac := base64.StdEncoding.EncodeToString(api.TEKMAC(secret, keys, true))
	status, cert := s.call(api.CertificatePath, r.device, api.VerificationCertificateRequest{VerificationToken: verified["token"].(string), ExposureKeyHMAC: mac})
	if status != 200 {
		s.t.Fatalf("certificate: %d %v", status, cert)
	}
	// The token is single use.
	s.wantError(api.CertificatePath, r.device, api.VerificationCertificateRequest{VerificationToken: verified["token"].(string), ExposureKeyHMAC: mac}, 400, api.ErrTokenExpired)
	// So is the code.
	s.wantError(api.VerifyPath, r.device, api.VerifyCodeRequest{VerificationCode: code}, 400, api.ErrVerifyCodeInvalid)
	return &api.Publish{Keys: keys, HealthAuthorityID: r.app, VerificationPayload: cert["certificate"].(string), HMACKey: base64.StdEncoding.EncodeToString(secret)}
}

func (s *e2eServer) publishOK(p *api.Publish) {
	s.t.Helper()
	status, body := s.postJSON(api.PublishPath, p, nil)
	if r := decodePublish(s.t, body); status != 200 || r.InsertedExposures != len(p.Keys) {
		s.t.Fatalf("publish with the certificate: %d %s", status, body)
	}
}

// TestE2EVerification: with only HTTP and the operator commands, against
// the real binary: a realm and its API keys; issue, verify, certificate,
// publish to the built-in key server (trusted with no key copying); the long
// code and its link; key rotation; revocation; maintenance and quota; the
// statistics; and no secret, code or phone number in the logs.
func TestE2EVerification(t *testing.T) {
	s := startE2EServer(t, "")
	r := addE2ERealm(t, s.bin, s.data, "e2e", "US-E2E")
	if r.app != "us-e2e.candor.app" {
		t.Errorf("app %s", r.app)
	}

	// Short code, then long code, each to an accepted publish.
	s.publishOK(s.flow(r, false))
	s.publishOK(s.flow(r, true))

	// The long-code link redirects a phone to the app.
	_, issued := s.call(api.IssuePath, r.admin, api.IssueCodeRequest{TestType: "likely"})
	link := issued["longCodeLink"].(string)
	if want := s.url + "/v?c=" + issued["longCode"].(string); link != want {
		t.Errorf("link %s, want %s", link, want)
	}
	req, _ := http.NewRequest("GET", link, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Android 14)")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "ens://v?c="+issued["longCode"].(string) {
		t.Errorf("/v: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// checkcodestatus and expirecode.
	if st, m := s.call(api.CheckCodeStatusPath, r.admin, api.CheckCodeStatusRequest{UUID: issued["uuid"].(string)}); st != 200 || m["claimed"] != false {
		t.Errorf("status: %d %v", st, m)
	}
	if st, m := s.call(api.ExpireCodePath, r.admin, api.ExpireCodeRequest{UUID: issued["uuid"].(string)}); st != 200 {
		t.Errorf("expire: %d %v", st, m)
	}
	s.wantError(api.VerifyPath, r.device, api.VerifyCodeRequest{VerificationCode: issued["longCode"].(string)}, 400, api.ErrVerifyCodeExpired)

	// JWKS, then a rotation: the new key signs at once and the key server
	// takes its certificates at once; the old key stays published.
	set := getJWKS(t, s.url+"/jwks/e2e")
	if len(set.Keys) != 1 || set.Keys[0].KeyID != "v1" {
		t.Fatalf("jwks %+v", set)
	}
	if out, err := s.run("admin", "realm", "rotate-key", "--data", s.data, "--name", "e2e"); err != nil || !strings.Contains(out, "v1, v2") {
		t.Fatalf("rotate-key: %q %v", out, err)
	}
	p := s.flow(r, false)
	if !strings.Contains(mustDecodeSegment(t, p.VerificationPayload, 0), `"kid":"v2"`) {
		t.Errorf("certificate after rotation: %s", mustDecodeSegment(t, p.VerificationPayload, 0))
	}
	s.publishOK(p)
	if set := getJWKS(t, s.url+"/jwks/e2e"); len(set.Keys) != 2 {
		t.Errorf("jwks after rotation %+v", set)
	}

	// Bad input over HTTP, a sample (the verification package covers all).
	s.wantError(api.VerifyPath, "", api.VerifyCodeRequest{VerificationCode: "12345678"}, 401, api.ErrUnauthorized)
	s.wantError(api.IssuePath, r.device, api.IssueCodeRequest{TestType: "confirmed"}, 401, api.ErrUnauthorized)
	s.wantError(api.IssuePath, r.admin, api.IssueCodeRequest{TestType: "confirmed", TestDate: time.Now().UTC().AddDate(0, 0, 2).Format("2006-01-02")}, 400, api.ErrInvalidDate)
	s.wantError(api.CheckCodeStatusPath, r.admin, api.CheckCodeStatusRequest{UUID: "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}, 404, api.ErrVerifyCodeNotFound)
	if status, _ := s.postJSON(api.VerifyPath, map[string]string{"code": "1", "bogus": "x"}, map[string]string{api.APIKeyHeader: r.device}); status != 400 {
		t.Errorf("unknown field: %d", status)
	}

	// Revocation through the command line.
	out, err := s.run("admin", "apikey", "list", "--data", s.data, "--realm", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^(k[0-9a-f]+)\s+device`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("apikey list:\n%s", out)
	}
	if _, err := s.run("admin", "apikey", "revoke", "--data", s.data, "--realm", "e2e", "--id", m[1]); err != nil {
		t.Fatal(err)
	}
	s.wantError(api.VerifyPath, r.device, api.VerifyCodeRequest{VerificationCode: "12345678"}, 401, api.ErrUnauthorized)
	r.device = addE2EAPIKey(t, s.bin, s.data, "e2e", "device")

	// Quota and maintenance through `realm set`.
	if _, err := s.run("admin", "realm", "set", "--data", s.data, "--name", "e2e", "--daily-quota", "1"); err != nil {
		t.Fatal(err)
	}
	s.wantError(api.IssuePath, r.admin, api.IssueCodeRequest{TestType: "confirmed"}, 429, api.ErrQuotaExceeded)
	if _, err := s.run("admin", "realm", "set", "--data", s.data, "--name", "e2e", "--daily-quota", "0", "--maintenance"); err != nil {
		t.Fatal(err)
	}
	s.wantError(api.VerifyPath, r.device, api.VerifyCodeRequest{VerificationCode: "12345678"}, 429, api.ErrMaintenanceMode)
	if _, err := s.run("admin", "realm", "set", "--data", s.data, "--name", "e2e", "--maintenance=false"); err != nil {
		t.Fatal(err)
	}
	s.wantError(api.VerifyPath, r.device, api.VerifyCodeRequest{VerificationCode: "12345678"}, 400, api.ErrVerifyCodeInvalid)

	// Statistics.
	out, err = s.run("admin", "realm", "stats", "--data", s.data, "--name", "e2e", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var days []verification.DayStats
	if err := json.Unmarshal([]byte(out), &days); err != nil || len(days) == 0 {
		t.Fatalf("stats %q: %v", out, err)
	}
	var total verification.Stats
	for _, d := range days {
		total.Add(d.Stats)
	}
	if total.CodesIssued != 4 || total.CodesClaimed != 3 || total.CertificatesIssued != 3 || total.InvalidAttempts < 5 {
		t.Errorf("stats %+v", total)
	}

	// Nothing secret reached the logs or metrics.
	metrics := httpGet(t, s.metrics+"/metrics")
	if !strings.Contains(metrics, `candor_verification_requests_total{endpoint="verify",outcome="ok"}`) {
		t.Errorf("no verification metrics:\n%s", grepLines(metrics, "verification"))
	}
	logs := s.stderr.String()
	for what, secret := range map[string]string{"admin key": r.admin, "device key": r.device, "long code": issued["longCode"].(string), "short code": issued["code"].(string), "phone": "2065550123"} {
		if strings.Contains(logs, secret) || strings.Contains(metrics, secret) {
			t.Errorf("the %s appears in the logs or metrics", what)
		}
	}
}

// TestE2EVerificationRealmAddedOffline: a realm added while no server runs
// (the command opens the store directly) is trusted once the server starts,
// at whatever address it then has.
func TestE2EVerificationRealmAddedOffline(t *testing.T) {
	s := startE2EServer(t, "")
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := addE2ERealm(t, s.bin, s.data, "offline", "US-OFF")
	s2 := startE2EServer(t, s.data)
	s2.publishOK(s2.flow(r, false))
	// Its JWKS URL was moved to the running server before the key server's
	// first poll, which therefore found the keys there.
	set := getJWKS(t, s2.url+"/jwks/offline")
	if len(set.Keys) != 1 {
		t.Fatalf("jwks %+v", set)
	}
	if logs := s2.stderr.String(); strings.Contains(logs, "jwks sync failed") {
		t.Errorf("the JWKS poll failed:\n%s", grepLines(logs, "jwks"))
	}
}

func getJWKS(t *testing.T, url string) api.JWKS {
	t.Helper()
	var set api.JWKS
	if err := json.Unmarshal([]byte(httpGet(t, url)), &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func mustDecodeSegment(t *testing.T, jwt string, i int) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BenchmarkVerificationFlow measures full flows per second — issue a code
// (admin API), verify it, get a certificate — against a running `candor
// serve` (built without -race) over loopback HTTP:
//
//	go test -run '^$' -bench VerificationFlow -benchtime 20000x ./cmd/candor/
//
// Each run adds a fresh realm (no quota) with its API keys.
func BenchmarkVerificationFlow(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "candor")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	// CANDOR_BENCH_URL and CANDOR_BENCH_DATA point the benchmark at a server
	// already running; otherwise it starts one.
	url, data := os.Getenv("CANDOR_BENCH_URL"), os.Getenv("CANDOR_BENCH_DATA")
	if url == "" || data == "" {
		data = filepath.Join(dir, "data")
		addr := freeAddrB(b)
		cmd := exec.Command(bin, "serve", "--data", data, "--addr", addr, "--metrics-addr", "127.0.0.1:0", "--log-level", "warn")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}()
		url = "http://" + addr
		for i := 0; ; i++ {
			if resp, err := http.Get(url + "/health"); err == nil {
				resp.Body.Close()
				break
			}
			if i > 300 {
				b.Fatalf("server not healthy: %s", stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	realm := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if _, err := runCandor(bin, "admin", "realm", "add", "--data", data, "--name", realm, "--region", "BENCH", "--daily-quota", "0"); err != nil {
		b.Fatal(err)
	}
	admin, err := runCandor(bin, "admin", "apikey", "add", "--data", data, "--realm", realm, "--kind", "admin")
	if err != nil {
		b.Fatal(err)
	}
	device, err := runCandor(bin, "admin", "apikey", "add", "--data", data, "--realm", realm, "--kind", "device")
	if err != nil {
		b.Fatal(err)
	}
	admin, device = strings.TrimSpace(admin), strings.TrimSpace(device)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}, Timeout: 30 * time.Second}
	post := func(path, key string, body any, out any) error {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", url+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(api.APIKeyHeader, key)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %d %s", path, resp.StatusCode, rb[:min(len(rb), 200)])
		}
		return json.Unmarshal(rb, out)
	}
	mac := base64.StdEncoding.EncodeToString(make([]byte, 32))
	var failures atomic.Int64
	var firstErr sync.Once
	b.SetParallelism(64) // 64 × GOMAXPROCS concurrent phones
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var is api.IssueCodeResponse
			var v api.VerifyCodeResponse
			var c api.VerificationCertificateResponse
			err := post(api.IssuePath, admin, api.IssueCodeRequest{TestType: "confirmed"}, &is)
			if err == nil {
				err = post(api.VerifyPath, device, api.VerifyCodeRequest{VerificationCode: is.VerificationCode}, &v)
			}
			if err == nil {
				err = post(api.CertificatePath, device, api.VerificationCertificateRequest{VerificationToken: v.VerificationToken, ExposureKeyHMAC: mac}, &c)
			}
			if err != nil {
				failures.Add(1)
				firstErr.Do(func() { b.Error(err) })
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "flows/s")
	if n := failures.Load(); n > 0 {
		b.Errorf("%d of %d flows failed", n, b.N)
	}
}

func freeAddrB(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEnsureDemoRealm: on a first start the demo realm is created, trusted
// by the built-in key server, and its two API keys printed; later starts
// print nothing.
func TestEnsureDemoRealm(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	m, err := NewMain(Config{DataDir: dir, Addr: "127.0.0.1:9999", LogLevel: "warn", LogFormat: "text"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m.useBolt(db)
	if m.Master, err = keyset.OpenMasterFile(filepath.Join(dir, "master.key")); err != nil {
		t.Fatal(err)
	}
	rev, err := keyset.Open(ctx, m.DB, m.Master, "test/revision", keyset.PurposeAEAD, keyset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Registry = prometheus.NewRegistry()
	m.Publisher = keyserver.NewPublisher(m.DB, m.DB, rev, keyserver.PublishOptions{})
	if err := m.openVerification(ctx); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := m.ensureDemoRealm(ctx, &out); err != nil {
		t.Fatal(err)
	}
	admin := regexp.MustCompile(`admin API key:\s+(ca_\S+)`).FindStringSubmatch(out.String())
	device := regexp.MustCompile(`device API key:\s+(cd_\S+)`).FindStringSubmatch(out.String())
	if admin == nil || device == nil || !strings.Contains(out.String(), "http://127.0.0.1:9999/api/issue") {
		t.Fatalf("output:\n%s", out.String())
	}
	if _, err := m.Verification.Authenticate(ctx, admin[1], verification.AdminKey); err != nil {
		t.Errorf("printed admin key: %v", err)
	}
	if _, err := m.Verification.Authenticate(ctx, device[1], verification.DeviceKey); err != nil {
		t.Errorf("printed device key: %v", err)
	}
	ha, err := m.DB.HealthAuthority(ctx, "candor/demo")
	if err != nil || ha.JWKSURL != "http://127.0.0.1:9999/jwks/demo" || len(ha.Keys) != 1 || ha.Keys[0].Version != "v1" || ha.Audience != verification.DefaultCertificateAudience {
		t.Fatalf("authority %+v %v", ha, err)
	}
	if app, err := m.DB.App(ctx, "demo.candor.app"); err != nil || app.Region != "DEMO" || !app.Allows("candor/demo") {
		t.Fatalf("app %+v %v", app, err)
	}
	out.Reset()
	if err := m.ensureDemoRealm(ctx, &out); err != nil || out.Len() != 0 {
		t.Fatalf("second start: %q %v", out.String(), err)
	}
}
