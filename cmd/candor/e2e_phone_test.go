package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/internal/loadgen"
	phonepkg "github.com/candor-en/candor/phone"
)

// The phone journey end to end against the real binary: a health authority
// (realm) with API keys and an export configuration, three simulated phones,
// a code issued through the admin API, an upload, an export, and the
// phones' syncs.

const (
	pjRealm  = "e2e"
	pjRegion = "US-E2E"
	pjApp    = "us-e2e.candor.app" // the realm's default healthAuthorityID
	pjRoot   = "us-e2e"
)

// phoneJourneyAuthority sets up a realm, its admin and device API keys and an
// export configuration through the operator commands.
type phoneJourneyAuthority struct {
	adminKey, deviceKey string
}

func setupPhoneJourney(t *testing.T, s *e2eServer) *phoneJourneyAuthority {
	t.Helper()
	out, err := s.run("admin", "realm", "add", "--data", s.data, "--name", pjRealm, "--region", pjRegion)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, pjApp) {
		t.Fatalf("realm add: the app is not %s:\n%s", pjApp, out)
	}
	ha := &phoneJourneyAuthority{}
	for kind, dst := range map[string]*string{"admin": &ha.adminKey, "device": &ha.deviceKey} {
		out, err := s.run("admin", "apikey", "add", "--data", s.data, "--realm", pjRealm, "--kind", kind)
		if err != nil {
			t.Fatal(err)
		}
		*dst = strings.TrimSpace(out)
	}
	if _, err := s.run("admin", "export", "add", "--data", s.data, "--root", pjRoot, "--region", pjRegion,
		"--key-id", "310", "--key-version", "v1", "--min-keys", "100"); err != nil {
		t.Fatal(err)
	}
	return ha
}

// issue issues a code of testType through the admin API.
func (ha *phoneJourneyAuthority) issue(t *testing.T, c *client.Client, testType string, now time.Time) string {
	t.Helper()
	resp, err := c.Issue(context.Background(), ha.adminKey, &api.IssueCodeRequest{
		TestType: testType, SymptomDate: now.UTC().AddDate(0, 0, -2).Format(time.DateOnly),
	})
	if err != nil {
		t.Fatalf("issue %s code: %v", testType, err)
	}
	if resp.VerificationCode == "" || resp.LongCode == "" {
		t.Fatalf("issue: %+v", resp)
	}
	return resp.VerificationCode
}

// exportRun runs an export pass as if at the end of the current hour's
// window plus the minimum window age, so the keys uploaded so far go out.
func phoneJourneyExport(t *testing.T, s *e2eServer) string {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + 16*time.Minute)
	out, err := s.run("export", "run", "--data", s.data, "--now", at.Format(time.RFC3339), "--allow-future")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestE2EPhoneJourney(t *testing.T) {
	e2eAvoidHourBoundary(t, 3*time.Minute)
	s := startE2EServer(t, "")
	ha := setupPhoneJourney(t, s)
	c, err := client.New(s.url)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := func(name string) string { return filepath.Join(dir, name+".json") }
	phone := func(args ...string) string {
		t.Helper()
		out, err := s.run(append([]string{"phone"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	now := time.Now().UTC()
	// D downloads through a CDN that can damage files on their way.
	cdn := newDamagingCDN(t, s.url)
	for _, p := range []string{"a", "b", "c", "d"} {
		server := s.url
		if p == "d" {
			server = cdn.url
		}
		out := phone("keys", "--state", state(p), "--server", server, "--api-key", ha.deviceKey, "--app", pjApp, "--exports-root", pjRoot)
		if !strings.Contains(out, "14 daily keys") {
			t.Fatalf("keys: %s", out)
		}
	}
	if fi, err := os.Stat(state("a")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v", fi.Mode(), err)
	}

	// A and B met yesterday from 12:00 to 12:30 UTC; C met B (who never
	// reports) later that day; D met A the same day as B did.
	yesterday := now.AddDate(0, 0, -1).Truncate(24 * time.Hour)
	met := yesterday.Add(12 * time.Hour).Format(time.RFC3339)
	out := phone("encounter", "--state", state("b"), "--with", state("a"), "--minutes", "30", "--at", met)
	if !strings.Contains(out, "3 RPIs recorded") || !strings.Contains(out, "30 one-minute scans") {
		t.Fatalf("encounter: %s", out)
	}
	phone("encounter", "--state", state("a"), "--with", state("b"), "--minutes", "30", "--at", met)
	phone("encounter", "--state", state("c"), "--with", state("b"), "--minutes", "20", "--at", yesterday.Add(15*time.Hour).Format(time.RFC3339))
	phone("encounter", "--state", state("d"), "--with", state("a"), "--minutes", "10", "--at", yesterday.Add(18*time.Hour).Format(time.RFC3339))

	// Decoy traffic is answered like a real upload and changes nothing.
	if err := c.Chaff(context.Background(), ha.deviceKey, pjApp); err != nil {
		t.Errorf("chaff: %v", err)
	}

	// A health worker issues a "likely" code; A reports with it.
	out = phone("report", "--state", state("a"), "--code", ha.issue(t, c, api.TestTypeLikely, now))
	if !strings.Contains(out, "code verified: likely") || !strings.Contains(out, "uploaded 14 keys: 14 stored") {
		t.Fatalf("report: %s", out)
	}
	// The code is single use.
	_, err = s.run("phone", "report", "--state", state("b"), "--code", "00000000")
	if err == nil || !strings.Contains(err.Error(), client.Explain(api.ErrVerifyCodeInvalid)) {
		t.Errorf("report with a wrong code: %v", err)
	}

	out = phoneJourneyExport(t, s)
	if !regexp.MustCompile(pjRoot + `: 1 batches, 1 files \(13 keys`).MatchString(out) {
		t.Fatalf("export run: %s", out) // today's key is embargoed until it expires
	}

	// The transparency log reads and verifies with the client.
	phoneJourneyLogged(t, s, c)

	// B finds the exposure: yesterday, 30 minutes, a likely diagnosis.
	out = phone("sync", "--state", state("b"), "--trust-server-keys")
	day := yesterday.Format(time.DateOnly)
	wantLine := day + "  30 min  (3 matched 10-minute intervals; heard in 30 one-minute scans)  clinical diagnosis (likely)"
	if !strings.Contains(out, "pinned export key 310/v1") || !strings.Contains(out, "exposures on 1 day(s):") || !strings.Contains(out, wantLine) {
		t.Fatalf("B sync: want %q in\n%s", wantLine, out)
	}
	// C finds none.
	out = phone("sync", "--state", state("c"), "--trust-server-keys")
	if !strings.Contains(out, "1 new") || !strings.Contains(out, "no exposures") {
		t.Fatalf("C sync: %s", out)
	}
	// A second sync downloads nothing new.
	out = phone("sync", "--state", state("b"))
	if !strings.Contains(out, "1 files listed, 0 new") || !strings.Contains(out, wantLine) {
		t.Errorf("B second sync: %s", out)
	}

	// A is confirmed: a new code revises the upload.
	out = phone("report", "--state", state("a"), "--code", ha.issue(t, c, api.TestTypeConfirmed, now))
	if !strings.Contains(out, "code verified: confirmed") || !strings.Contains(out, "revised the earlier report") {
		t.Fatalf("revision: %s", out)
	}
	// The earlier type again changes nothing, as in the reference key server.
	out = phone("report", "--state", state("a"), "--code", ha.issue(t, c, api.TestTypeLikely, now))
	if !strings.Contains(out, "code verified: likely") {
		t.Fatalf("the likely report again: %s", out)
	}
	// A key is revised once: a third type is refused clearly.
	_, err = s.run("phone", "report", "--state", state("a"), "--code", ha.issue(t, c, api.TestTypeNegative, now))
	if err == nil || !strings.Contains(err.Error(), client.Explain(api.CodeKeyAlreadyRevised)) || !strings.Contains(err.Error(), "step 3 of 3") {
		t.Errorf("a second revision: %v", err)
	}

	// Bad files (the server never serves them; a CDN may): D's sync
	// refuses a truncated zip and says so; with the wrong pinned key, it
	// refuses the signature.
	names, err := c.Index(context.Background(), pjRoot)
	if err != nil || len(names) != 1 {
		t.Fatalf("index: %v, %v", names, err)
	}
	cdn.damage(func(b []byte) []byte { return b[:len(b)/2] })
	_, err = s.run("phone", "sync", "--state", state("d"), "--trust-server-keys")
	if err == nil || !strings.Contains(err.Error(), "truncated or not a zip file") {
		t.Errorf("truncated file: %v", err)
	}
	cdn.damage(func(b []byte) []byte { return phoneJourneyBadHeader(t, b) })
	_, err = s.run("phone", "sync", "--state", state("d"))
	if err == nil || !strings.Contains(err.Error(), "wrong export.bin header") {
		t.Errorf("wrong header: %v", err)
	}
	cdn.damage(nil)
	wrongKey := filepath.Join(dir, "other.pem")
	os.WriteFile(wrongKey, []byte(phoneJourneyOtherKey(t)), 0o600)
	for p, pin := range map[string]string{"e": "310/v1", "f": "311/v1"} {
		phone("keys", "--state", state(p), "--server", s.url, "--exports-root", pjRoot)
		_, err = s.run("phone", "sync", "--state", state(p), "--export-key", pin+"="+wrongKey)
		want := map[string]string{"e": "bad signature", "f": "signed by an unknown key id"}[p]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pinned %s=another key: %v, want %q", pin, err, want)
		}
	}
	// Once the file is whole again, D syncs and finds its 10 minutes.
	out = phone("sync", "--state", state("d"))
	if !strings.Contains(out, day+"  10 min  (1 matched 10-minute intervals; heard in 10 one-minute scans)") {
		t.Errorf("D sync: %s", out)
	}
}

// phoneJourneyBadHeader returns the export zip with export.bin's header changed
// and the signatures kept.
func phoneJourneyBadHeader(t *testing.T, z []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == export.BinEntry {
			b = append([]byte("EK Export v9    "), b[len(export.Header):]...)
		}
		w, _ := zw.Create(f.Name)
		w.Write(b)
	}
	zw.Close()
	return buf.Bytes()
}

// phoneJourneyOtherKey returns the PEM of a fresh P-256 public key.
func phoneJourneyOtherKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := api.MarshalPublicKeyPEM(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// phoneClock is a settable clock for an in-process server.
type phoneClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *phoneClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *phoneClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestE2EPhoneRevision: a revision shows up in revised_keys and a phone's
// next sync turns its exposure from likely to confirmed.
//
// The key server stores upload and revision times truncated to the hour,
// and a revision goes to revised_keys only when it falls in a later export
// window than the upload. With a real clock that takes an hour, and the
// binary has no clock flag, so this test runs the same Main as `candor
// serve` in process with a settable clock; everything else (operator
// commands through the admin socket, HTTP, the phone commands) is as in the
// binary.
func TestE2EPhoneRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now().UTC()
	clock := &phoneClock{t: start}
	data := t.TempDir()
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.flags(fs)
	if err := fs.Parse([]string{"--data", data, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "warn", "--export-interval", "1h"}); err != nil {
		t.Fatal(err)
	}
	cfg.Now = clock.Now
	logs := &lockedBuffer{}
	m, err := NewMain(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		// Close stops the log's background writer before the directory goes.
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := Run(ctx, args, strings.NewReader(""), &out, &errb)
		if err != nil {
			return out.String(), fmt.Errorf("candor %s: %w\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), nil
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	phone := func(args ...string) string {
		t.Helper()
		return must(append(append([]string{"phone"}, args...), "--now", clock.Now().Format(time.RFC3339))...)
	}

	// The health authority, as in TestE2EPhoneJourney.
	must("admin", "realm", "add", "--data", data, "--name", pjRealm, "--region", pjRegion)
	adminKey := strings.TrimSpace(must("admin", "apikey", "add", "--data", data, "--realm", pjRealm, "--kind", "admin"))
	deviceKey := strings.TrimSpace(must("admin", "apikey", "add", "--data", data, "--realm", pjRealm, "--kind", "device"))
	must("admin", "export", "add", "--data", data, "--root", pjRoot, "--region", pjRegion, "--key-id", "310", "--key-version", "v1", "--min-keys", "20")
	ha := &phoneJourneyAuthority{adminKey: adminKey, deviceKey: deviceKey}
	c, err := client.New(m.URL(), client.WithFetchedExportKeys())
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	state := func(name string) string { return filepath.Join(dir, name+".json") }
	for _, p := range []string{"a", "b"} {
		phone("keys", "--state", state(p), "--server", m.URL(), "--api-key", deviceKey, "--app", pjApp, "--exports-root", pjRoot)
	}
	yesterday := start.AddDate(0, 0, -1).Truncate(24 * time.Hour)
	phone("encounter", "--state", state("b"), "--with", state("a"), "--minutes", "25", "--at", yesterday.Add(9*time.Hour+5*time.Minute).Format(time.RFC3339))

	// Hour 0: A reports a likely result; an hour and a quarter later the
	// window is exported and B finds a 30-minute exposure (3 intervals
	// touched by 25 minutes from 9:05).
	hour := start.Truncate(time.Hour)
	phone("report", "--state", state("a"), "--code", ha.issue(t, c, api.TestTypeLikely, clock.Now()))
	clock.Set(hour.Add(time.Hour + 16*time.Minute))
	must("export", "run", "--data", data)
	day := yesterday.Format(time.DateOnly)
	out := phone("sync", "--state", state("b"), "--trust-server-keys")
	if want := day + "  30 min  (3 matched 10-minute intervals; heard in 25 one-minute scans)  clinical diagnosis (likely)"; !strings.Contains(out, want) {
		t.Fatalf("B sync: want %q in\n%s", want, out)
	}

	// Hour 1: A's confirmed result revises the keys; the next window's file
	// carries them as revised keys.
	clock.Set(hour.Add(time.Hour + 20*time.Minute))
	out = phone("report", "--state", state("a"), "--code", ha.issue(t, c, api.TestTypeConfirmed, clock.Now()))
	if !strings.Contains(out, "revised the earlier report") {
		t.Fatalf("revision: %s", out)
	}
	clock.Set(hour.Add(2*time.Hour + 16*time.Minute))
	out = must("export", "run", "--data", data)
	if !strings.Contains(out, "13 revised") {
		t.Errorf("export run after the revision: %s", out)
	}
	names, err := c.Index(ctx, pjRoot)
	if err != nil || len(names) != 2 {
		t.Fatalf("index: %v, %v", names, err)
	}
	f, err := c.DownloadExport(ctx, names[1])
	if err != nil {
		t.Fatal(err)
	}
	st, err := phonepkg.Load(state("a"))
	if err != nil {
		t.Fatal(err)
	}
	revised := map[string]export.ReportType{}
	for _, k := range f.RevisedKeys {
		revised[base64.StdEncoding.EncodeToString(k.Data)] = k.ReportType
	}
	for _, k := range st.UploadKeys(clock.Now())[:13] { // today's key is still embargoed
		if rt, ok := revised[k.Key]; !ok || rt != export.ConfirmedTest {
			t.Errorf("A's key %s: in revised_keys %v as %v", k.Key, ok, rt)
		}
	}
	out = phone("sync", "--state", state("b"))
	if want := day + "  30 min  (3 matched 10-minute intervals; heard in 25 one-minute scans)  confirmed test"; !strings.Contains(out, "13 revised keys, signed by 310/v1: 0 matched, 1 revised") || !strings.Contains(out, want) {
		t.Errorf("B sync after the revision: want %q in\n%s", want, out)
	}
}

// phoneJourneyLogged reads the transparency log with the client: the
// checkpoint verifies with the log's published key, and the entries hash to
// it.
func phoneJourneyLogged(t *testing.T, s *e2eServer, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	vkey := strings.TrimSpace(httpGet(t, s.url+"/transparency/key"))
	lc, err := client.New(s.url, client.WithLogKey(vkey))
	if err != nil {
		t.Fatalf("log key %q: %v", vkey, err)
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
		if !cp.Verified || uint64(len(entries)) != cp.Size {
			t.Fatalf("checkpoint %+v, %d entries", cp, len(entries))
		}
		if len(entries) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the transparency log stays empty")
		}
	}
}

// TestPhoneCommandUsage: mistakes on the phone command line are usage
// errors with a message that says what to do; no server is needed.
func TestPhoneCommandUsage(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := Run(context.Background(), append([]string{"phone"}, args...), strings.NewReader(""), &out, &errb)
		return out.String() + errb.String(), err
	}
	for _, p := range []string{a, b} {
		if _, err := run("keys", "--state", p, "--now", "2026-05-10T15:00:00Z"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "phone needs a command"},
		{[]string{"fly"}, `unknown phone command "fly"`},
		{[]string{"keys"}, "--state FILE is required"},
		{[]string{"keys", "--state", a, "--now", "yesterday"}, "want RFC 3339"},
		{[]string{"encounter", "--state", b}, "--with OTHER_STATE is required"},
		{[]string{"encounter", "--state", b, "--with", a, "--minutes", "0"}, "--minutes must be at least 1"},
		{[]string{"encounter", "--state", b, "--with", a, "--now", "2026-05-10T15:00:00Z", "--at", "2026-05-10T14:50:00Z", "--minutes", "30"}, "after the phone's clock"},
		{[]string{"encounter", "--state", filepath.Join(dir, "none.json"), "--with", a}, "create the phone with `candor phone keys"},
		{[]string{"report", "--state", a}, "--code is required"},
		{[]string{"report", "--state", a, "--code", "1"}, "the phone has no server"},
		{[]string{"sync", "--state", a}, "the phone has no export root"},
		{[]string{"sync", "--state", a, "--exports-root", "us", "--server", "http://127.0.0.1:1"}, "no export signing key is pinned"},
		{[]string{"sync", "--state", a, "--export-key", "310=x.pem"}, "want KEYID/VERSION=PEMFILE"},
	} {
		out, err := run(tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("phone %s: %v\n%s\nwant %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	// The encounter of the model: 25 minutes from 9:05 touch 3 intervals.
	out, err := run("encounter", "--state", b, "--with", a, "--now", "2026-05-10T15:00:00Z", "--at", "2026-05-09T09:05:00Z", "--minutes", "25")
	if err != nil || !strings.Contains(out, "3 RPIs recorded, one per 10-minute interval from 2026-05-09 09:00 to 09:30 UTC (25 one-minute scans)") {
		t.Errorf("encounter: %v\n%s", err, out)
	}
	out, err = run("show", "--state", b)
	if err != nil || !strings.Contains(out, "14 daily keys, 2026-04-27 to 2026-05-10") || !strings.Contains(out, "heard 3 RPIs") {
		t.Errorf("show: %v\n%s", err, out)
	}
}

// TestE2ELoadtestModes: `candor loadtest` drives every mode against a
// running server, creating what it needs through the operator socket, and
// writes its report.
func TestE2ELoadtestModes(t *testing.T) {
	// A load test comes from one address: lift the per-address bound.
	s := startE2EServer(t, "", "--log-level", "warn", "--rate-limit-per-address", "0")
	report := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	out, err := s.run("loadtest", "--url", s.url, "--data", s.data, "--mode", "publish,verify,download",
		"--concurrency", "2", "--duration", "1s", "--max-rate", "300", "--report", report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"publish 14 keys", "verify: issue", "verify: verify", "verify: certificate", "verify: flow", "download: index.txt", "download: 1 zip file(s)"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want) + `.* req/s .* errors=0`).MatchString(out) {
			t.Errorf("no error-free %q line in:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "# Performance\n\n"+loadgen.ReportBegin) || strings.Count(string(b), "\n| ") != 1+7 {
		t.Errorf("report:\n%s", b)
	}
}
