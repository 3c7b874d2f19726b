package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/candor-en/candor/api"
)

// The browser tests drive Debian's chromium, headless, against the real
// binary: a health worker's and an admin's whole day in the web UI.

// chromiumPath returns the browser to drive. A missing browser fails the
// test under CI (CI=true) and skips it elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: the browser tests need it (apt-get install chromium)")
	}
	t.Skip("apt-get install chromium")
	return ""
}

// uiBrowser is one headless chromium tab on a server. It keeps a screenshot
// of every page it saw and writes them to test-output/ when the test fails
// (or always, with CANDOR_UI_SCREENSHOTS=1).
type uiBrowser struct {
	t        *testing.T
	ctx      context.Context
	base     string
	download string
	shots    []shot
}

type shot struct {
	name string
	png  []byte
}

func newUIBrowser(t *testing.T, base string) *uiBrowser {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	b := &uiBrowser{t: t, ctx: ctx, base: base, download: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			b.snap("at-failure")
		}
		if t.Failed() || os.Getenv("CANDOR_UI_SCREENSHOTS") == "1" {
			b.writeShots()
		}
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: b.download, EventsEnabled: new(true),
		})
		if err != nil {
			return err
		}
		// Record what the Content Security Policy blocks on every page.
		_, err = chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: cspWatchJS,
		})
		return err
	})); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// cspWatchJS collects the page's Content Security Policy violations.
const cspWatchJS = `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});`

// snap keeps a screenshot of the current page, and fails the test if the
// Content Security Policy blocked anything on it (which would break the
// page: nothing it needs may be blocked).
func (b *uiBrowser) snap(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		b.shots = append(b.shots, shot{name, png})
	}
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__cspViolations || []`)); err == nil && len(v) > 0 {
		b.t.Errorf("%s: the Content Security Policy blocked %q", name, v)
	}
}

func (b *uiBrowser) writeShots() {
	dir := filepath.Join("..", "..", "test-output", b.t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshots: %v", err)
		return
	}
	for i, s := range b.shots {
		name := fmt.Sprintf("%02d-%s", i+1, regexp.MustCompile(`[^a-zA-Z0-9-]+`).ReplaceAllString(s.name, "-"))
		ext := ".png"
		if !bytes.HasPrefix(s.png, []byte("\x89PNG")) {
			ext = ".jpg"
		}
		if err := os.WriteFile(filepath.Join(dir, name+ext), s.png, 0o644); err != nil {
			b.t.Logf("screenshot: %v", err)
		}
	}
	b.t.Logf("screenshots of every page seen are in %s", dir)
}

// do runs actions as one step; on failure it fails the test.
func (b *uiBrowser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
	b.snap(step)
}

// submit clicks sel, waits for the page it loads and returns its status.
func (b *uiBrowser) submit(step, sel string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
	b.snap(step)
	return resp.Status
}

// open navigates to path and returns the HTTP status.
func (b *uiBrowser) open(path string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	b.snap(path)
	return resp.Status
}

func (b *uiBrowser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func evalJS[T any](b *uiBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *uiBrowser) fill(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SetValue(chromedp.CSS(sel), value)
}

// signIn signs in and returns the status of the page it lands on.
func (b *uiBrowser) signIn(email, password string) int64 {
	b.t.Helper()
	b.open("/ui/signin")
	b.do("fill sign-in", b.fill("#email", email), b.fill("#password", password))
	return b.submit("sign in as "+email, `form[action="/ui/signin"] button[type=submit]`)
}

func (b *uiBrowser) signOut() {
	b.t.Helper()
	b.submit("sign out", `form[action="/ui/signout"] button[type=submit]`)
}

// choosePassword completes the first sign-in: the one-time password is
// replaced by the user's own.
func (b *uiBrowser) choosePassword(oneTime, password string) {
	b.t.Helper()
	if h := b.text("h1"); h != "Your account" {
		b.t.Fatalf("first sign-in lands on %q, want the account page", h)
	}
	b.do("fill new password", b.fill("#current", oneTime), b.fill("#new", password), b.fill("#confirm", password))
	if st := b.submit("choose password", `form[action="/ui/account/password"] button[type=submit]`); st != http.StatusOK {
		b.t.Fatalf("choose password: status %d", st)
	}
}

// chooseZone answers the time-zone question of a first sign-in with the
// zone the page filled in from the browser, and returns it.
func (b *uiBrowser) chooseZone() string {
	b.t.Helper()
	if h := b.text("h1"); h != "Your time zone" {
		b.t.Fatalf("after the first sign-in: %q, want the time-zone question", h)
	}
	device := evalJS[string](b, `Intl.DateTimeFormat().resolvedOptions().timeZone`)
	if got := evalJS[string](b, `document.getElementById('timezone').value`); got == "" || got != device {
		b.t.Fatalf("time zone field %q, want the browser's %q", got, device)
	}
	if st := b.submit("save time zone", `form[action="/ui/account/timezone"] button[type=submit]`); st != http.StatusOK {
		b.t.Fatalf("save time zone: status %d", st)
	}
	return device
}

// stdoutValue finds the first match of re's group in the server's stdout.
func stdoutValue(t *testing.T, s *e2eServer, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("server stdout has no %s:\n%s", re, s.stdout.String())
	}
	return m[1]
}

// TestE2EUI: sign in with the first start's one-time password; issue a code
// and read it from the page; redeem it through the device API; see the
// statistics count it; bulk-issue a CSV, download the results, and upload
// it again (resume: nothing issued twice); check the code; a 360-px phone;
// a health worker gets 403 on admin pages; a form without its CSRF token is
// refused; five wrong passwords lock sign-in; the public page shows the log.
func TestE2EUI(t *testing.T) {
	chromiumPath(t)
	s := startE2EServer(t, "")
	adminPW := stdoutValue(t, s, `(?m)^  password:\s+(\S+)$`)
	deviceKey := stdoutValue(t, s, `device API key:\s+(\S+)`)
	b := newUIBrowser(t, s.url)

	// First sign-in: the one-time password must be replaced.
	b.signIn(FirstAdminEmail, adminPW)
	const adminOwn = "correct horse battery staple"
	b.choosePassword(adminPW, adminOwn)
	zone, err := time.LoadLocation(b.chooseZone())
	if err != nil {
		t.Fatal(err)
	}
	if h := b.text("h1"); h != "Issue a verification code" {
		t.Fatalf("after choosing a password: %q, want the issue page", h)
	}

	// Issue a code; the page shows it large, with a countdown and a QR code.
	b.do("choose likely", chromedp.Click(chromedp.CSS("#tt-likely")))
	if st := b.submit("issue", `#issue-form button[type=submit]`); st != http.StatusOK {
		t.Fatalf("issue: status %d", st)
	}
	code := strings.ReplaceAll(b.text("#short-code"), " ", "")
	if !regexp.MustCompile(`^[0-9]{8}$`).MatchString(code) {
		t.Fatalf("issued code %q", code)
	}
	tracking := b.text("#tracking-id")
	link := b.text("#long-link")
	if !strings.HasPrefix(link, s.url+"/v?c=") {
		t.Errorf("long-code link %q", link)
	}
	if n := evalJS[int](b, `document.querySelectorAll('svg.qr path').length`); n != 1 {
		t.Errorf("no QR code on the issued page")
	}
	b.do("countdown", chromedp.WaitVisible(chromedp.CSS(".countdown")))
	if cd := b.text(".countdown"); !regexp.MustCompile(`^1[45]:[0-5][0-9] left$`).MatchString(cd) {
		t.Errorf("countdown %q, want about 15 minutes left", cd)
	}

	// The phone redeems it.
	status, body := s.postJSON(api.VerifyPath, map[string]any{"code": code}, map[string]string{api.APIKeyHeader: deviceKey})
	if status != http.StatusOK {
		t.Fatalf("redeem the UI's code: %d %s", status, body)
	}
	var v api.VerifyCodeResponse
	if err := json.Unmarshal(body, &v); err != nil || v.TestType != "likely" || v.VerificationToken == "" {
		t.Fatalf("verify answer %s: %v", body, err)
	}

	// The statistics count it, and the code is shown as used.
	b.open("/ui/stats")
	if issued, claimed := b.text("#total-issued"), b.text("#total-claimed"); issued != "1" || claimed != "1" {
		t.Errorf("statistics: issued %s, claimed %s; want 1 and 1", issued, claimed)
	}
	if n := evalJS[int](b, `document.querySelectorAll('svg.chart rect.bar').length`); n == 0 {
		t.Errorf("statistics page has no chart bars")
	}
	b.open("/ui/codes?uuid=" + tracking)
	if st := b.text(".state"); !strings.HasPrefix(st, "Used") {
		t.Errorf("code status %q, want used", st)
	}

	// Bulk issue with progress; the results file downloads.
	today := time.Now().In(zone).Format("2006-01-02")
	csvFile := filepath.Join(t.TempDir(), "people.csv")
	os.WriteFile(csvFile, []byte("testType,symptomDate,testDate,ref\nconfirmed,,"+today+",lab-1\nlikely,,,lab-2\nnegative,,,=HYPERLINK(1)\n"), 0o600)
	rows := b.bulk(csvFile)
	if len(rows) != 4 {
		t.Fatalf("results file has %d lines, want a header and 3 rows: %q", len(rows), rows)
	}
	for _, r := range rows[1:] {
		if r[2] != "issued" || !regexp.MustCompile(`^[0-9]{8}$`).MatchString(r[3]) || !strings.HasPrefix(r[5], s.url+"/v?c=") {
			t.Errorf("results row %q", r)
		}
	}
	if rows[3][1] != "'=HYPERLINK(1)" {
		t.Errorf("a formula in the ref column was not defused: %q", rows[3][1])
	}
	if got := b.text("#bulk-status"); !strings.HasPrefix(got, "Done: 3 codes issued") {
		t.Errorf("bulk status %q", got)
	}
	// The same file again (an interrupted upload resumed): nothing twice.
	rows = b.bulk(csvFile)
	for _, r := range rows[1:] {
		if r[2] != "issued-earlier" || r[3] != "" {
			t.Errorf("second upload row %q, want issued-earlier without a code", r)
		}
	}

	// The admin's other pages render.
	for p, h1 := range map[string]string{
		"/ui/admin/apikeys": "API keys of realm demo", "/ui/admin/policy": "Code policy of realm demo",
		"/ui/system/realms": "Realms", "/ui/account/totp": "Set up two-step sign-in", "/ui/account": "Your account",
	} {
		if st := b.open(p); st != http.StatusOK || b.text("h1") != h1 {
			t.Errorf("%s: %d %q", p, st, b.text("h1"))
		}
	}

	// A 360-px phone: no sideways scrolling, and every control labelled.
	b.do("phone viewport", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile))
	for _, p := range []string{"/ui/issue", "/ui/stats", "/ui/bulk", "/ui/admin/users", "/ui/codes?uuid=" + tracking} {
		b.open(p)
		if w := evalJS[int](b, `document.documentElement.scrollWidth`); w > 360 {
			t.Errorf("%s is %d px wide on a 360-px screen", p, w)
		}
		if bad := evalJS[[]string](b, unlabelledJS); len(bad) > 0 {
			t.Errorf("%s has controls without a label: %v", p, bad)
		}
	}
	b.do("desktop viewport", chromedp.EmulateViewport(1280, 900))

	// A health worker: issues, but gets 403 on admin pages.
	wpw, err := s.run("admin", "user", "add", "--data", s.data, "--realm", "demo", "--email", "worker@example.org", "--role", "worker")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z0-9]{5}(-[a-z0-9]{5}){3}\n$`).MatchString(wpw) {
		t.Fatalf("admin user add printed %q, want the one-time password alone", wpw)
	}
	wpw = strings.TrimSpace(wpw)
	b.signOut()
	b.signIn("worker@example.org", wpw)
	const workerOwn = "tulip river lantern 42"
	b.choosePassword(wpw, workerOwn)
	b.chooseZone()
	for _, p := range []string{"/ui/admin/users", "/ui/admin/apikeys", "/ui/admin/policy", "/ui/admin/audit", "/ui/stats", "/ui/system/realms"} {
		if st := b.open(p); st != http.StatusForbidden {
			t.Errorf("health worker GET %s: %d, want 403", p, st)
		}
	}
	if n := evalJS[int](b, `document.querySelectorAll('a[href="/ui/admin/users"]').length`); n != 0 {
		t.Errorf("the health worker's menu links to admin pages")
	}

	// A form posted without its CSRF token is refused, and issues nothing.
	b.open("/ui/issue")
	b.do("drop the CSRF token", chromedp.Evaluate[chromedp.Void](`document.querySelector('#issue-form input[name=csrf]').remove()`))
	if st := b.submit("post without CSRF", `#issue-form button[type=submit]`); st != http.StatusForbidden {
		t.Errorf("form without CSRF token: %d, want 403", st)
	}
	if h := b.text("h1"); h != "This form was refused" {
		t.Errorf("form without CSRF token shows %q", h)
	}

	// Five wrong passwords lock the account's sign-in, even for the right one.
	b.open("/ui/issue")
	b.signOut()
	for i := 1; i <= 5; i++ {
		st := b.signIn("worker@example.org", "wrong password "+strconv.Itoa(i))
		msg := b.text("#signin-error")
		if i < 5 && (st != http.StatusUnauthorized || !strings.Contains(msg, "not right")) {
			t.Errorf("wrong password %d: %d %q", i, st, msg)
		}
		if i == 5 && (st != http.StatusTooManyRequests || !strings.Contains(msg, "Too many failed sign-in attempts")) {
			t.Errorf("fifth wrong password: %d %q, want locked", st, msg)
		}
	}
	if st := b.signIn("worker@example.org", workerOwn); st != http.StatusTooManyRequests {
		t.Errorf("right password while locked: %d, want 429", st)
	}

	// The admin's audit list names who did what; the public log does not.
	b.signIn(FirstAdminEmail, adminOwn)
	b.open("/ui/admin/audit")
	audit := b.text("main table")
	for _, want := range []string{"operator", "user.add", "worker@example.org", "code.bulk-issue"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit list lacks %q:\n%s", want, audit)
		}
	}

	// The public transparency page shows the log's size and its entries.
	deadline := time.Now().Add(15 * time.Second)
	for {
		b.open("/transparency")
		size := evalJS[string](b, logSizeJS)
		n, _ := strconv.Atoi(strings.TrimSpace(size))
		rows := evalJS[int](b, `document.querySelectorAll('#entries tbody tr td a').length`)
		if n > 0 && rows > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transparency page: log size %q, %d entry rows", size, rows)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if page := b.text("body"); strings.Contains(page, FirstAdminEmail) || strings.Contains(page, "worker@example.org") {
		t.Error("the public page names staff")
	}
}

// logSizeJS reads the number of entries the public page states.
const logSizeJS = `(function () {
  var el = document.getElementById('log-size');
  if (el) { return el.textContent; }
  var dt = Array.prototype.find.call(document.querySelectorAll('dt'), function (d) { return d.textContent.trim() === 'Entries'; });
  return dt ? dt.nextElementSibling.textContent : '';
})()`

// unlabelledJS lists the visible form controls that have no label.
const unlabelledJS = `Array.prototype.filter.call(document.querySelectorAll('input:not([type=hidden]), select, textarea'), function (el) {
  return !el.hidden && el.offsetParent !== null && el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby');
}).map(function (el) { return el.name || el.id; })`

// bulk uploads file on the bulk page, waits for the progress to finish,
// downloads the results and returns them.
func (b *uiBrowser) bulk(file string) [][]string {
	b.t.Helper()
	b.open("/ui/bulk")
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	done := chromedp.Events(ctx, browser.DownloadProgress)
	b.do("upload "+filepath.Base(file), chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{file}))
	b.do("start bulk issue", chromedp.Click(chromedp.CSS(`#bulk-form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#bulk-download")))
	if got := evalJS[string](b, `document.getElementById('bulk-bar').value + '/' + document.getElementById('bulk-bar').max`); got != "3/3" {
		b.t.Errorf("progress bar at %s, want 3/3", got)
	}
	b.do("download results", chromedp.Click(chromedp.CSS("#bulk-download")))
	for ev, err := range done {
		if err != nil {
			b.t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			b.t.Fatal("download canceled")
		}
		if ev.State != browser.DownloadProgressStateCompleted {
			continue
		}
		data, err := os.ReadFile(filepath.Join(b.download, ev.GUID))
		if err != nil {
			b.t.Fatal(err)
		}
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			b.t.Fatalf("results file: %v\n%s", err, data)
		}
		return rows
	}
	b.t.Fatal("no download")
	return nil
}

// startClockServer runs the server in this process, as `candor serve` with
// its default flags does, on a clock that reads start when the test begins
// and then moves with the wall clock: the binary has no way to set its
// clock, and should not have one. The first start's output (demo realm,
// API keys, the admin's one-time password) is in the returned stdout.
func startClockServer(t *testing.T, start time.Time) *e2eServer {
	t.Helper()
	offset := time.Until(start)
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.flags(fs)
	dir, addr := t.TempDir(), freeAddr(t)
	if err := fs.Parse([]string{"--data", dir, "--addr", addr, "--metrics-addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	cfg.Now = func() time.Time { return time.Now().Add(offset) }
	s := &e2eServer{t: t, data: dir, url: "http://" + addr, stderr: &lockedBuffer{}, stdout: &lockedBuffer{}, exited: make(chan struct{})}
	m, err := NewMain(cfg, s.stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	err = m.exclusive(ctx, startupLease, func() error {
		if err := m.ensureDemoRealm(ctx, s.stdout); err != nil {
			return err
		}
		return m.ensureFirstAdmin(ctx, s.stdout)
	})
	if err != nil {
		cancel()
		m.Close()
		t.Fatal(err)
	}
	go func() { s.waitErr = m.Run(ctx); close(s.exited) }()
	t.Cleanup(func() {
		cancel()
		<-s.exited
		m.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", s.stderr.String())
		}
	})
	return s
}

// setZone makes the browser's time zone zone, as a device set to it.
func (b *uiBrowser) setZone(zone string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone})
		return err
	})); err != nil {
		b.t.Fatalf("time zone %s: %v", zone, err)
	}
}

// TestE2EUITimeZones: health workers far from UTC, at local times on either
// side of UTC midnight, sign in for the first time and issue a code with
// the date the form offers. Their time zone is asked for and filled in
// from the browser; the form's today, bounds and prefilled date are the
// local date; the phone redeeming the code gets the local dates; and the
// expiry is shown with its zone.
func TestE2EUITimeZones(t *testing.T) {
	chromiumPath(t)
	for _, tc := range []struct {
		zone  string
		now   time.Time // the server's clock
		local string    // the date on the health worker's calendar then
	}{
		// 03:01 on Saturday in Auckland: UTC is still on Friday.
		{"Pacific/Auckland", time.Date(2026, 12, 4, 14, 1, 0, 0, time.UTC), "2026-12-05"},
		// 17:30 on Friday evening in Los Angeles: UTC is already on Saturday.
		{"America/Los_Angeles", time.Date(2026, 12, 5, 1, 30, 0, 0, time.UTC), "2026-12-04"},
	} {
		t.Run(tc.zone, func(t *testing.T) {
			loc, err := time.LoadLocation(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			if utc := tc.now.UTC().Format("2006-01-02"); utc == tc.local {
				t.Fatalf("the case must put the local date (%s) and the UTC date on different days", tc.local)
			}
			symptoms := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
			s := startClockServer(t, tc.now)
			adminPW := stdoutValue(t, s, `(?m)^  password:\s+(\S+)$`)
			deviceKey := stdoutValue(t, s, `device API key:\s+(\S+)`)
			b := newUIBrowser(t, s.url)
			b.setZone(tc.zone)

			b.signIn(FirstAdminEmail, adminPW)
			b.choosePassword(adminPW, "correct horse battery staple")
			if h := b.text("h1"); h == "Your time zone" {
				if got := b.chooseZone(); got != tc.zone {
					t.Errorf("time zone filled in from the browser: %q, want %q", got, tc.zone)
				}
			} else {
				t.Errorf("the first sign-in did not ask for the time zone (page %q)", h)
				b.open("/ui/issue")
			}
			if h := b.text("h1"); h != "Issue a verification code" {
				t.Fatalf("page %q, want the issue form", h)
			}

			// The form's today, bounds and prefilled date are the local date,
			// and it says which zone they are in.
			date := evalJS[[]string](b, `(function () { var d = document.getElementById('testDate'); return [d.value, d.max, d.min]; })()`)
			if date[0] != tc.local || date[1] != tc.local {
				t.Errorf("test date field: value %s, max %s; want the local date %s", date[0], date[1], tc.local)
			}
			if hint := b.text("#date-hint"); !strings.Contains(hint, tc.zone) {
				t.Errorf("the form does not say its time zone: %q", hint)
			}
			if w := evalJS[string](b, `(function () { var w = document.getElementById('zone-mismatch'); return !w ? 'missing' : w.hidden ? 'hidden' : 'shown'; })()`); w != "hidden" {
				t.Errorf("the warning of a device in another zone is %s; want it there and hidden (the device is in the account's zone)", w)
			}

			// Issue with the offered test date and a symptom date.
			b.do("fill symptom date", b.fill("#symptomDate", symptoms), chromedp.Click(chromedp.CSS("#tt-confirmed")))
			if st := b.submit("issue in "+tc.zone, `#issue-form button[type=submit]`); st != http.StatusOK {
				t.Fatalf("issue with the offered date: status %d: %s", st, b.text("main"))
			}
			code := strings.ReplaceAll(b.text("#short-code"), " ", "")

			// The expiry is the local time, with its zone.
			at, err := time.Parse(time.RFC3339, evalJS[string](b, `document.querySelector('p.expiry time').getAttribute('datetime')`))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := b.text("p.expiry time"), at.In(loc).Format("15:04 MST"); got != want || !regexp.MustCompile(`^\d\d:\d\d [A-Z]{3,4}$`).MatchString(got) {
				t.Errorf("short code valid until %q, want %q (local, with the zone)", got, want)
			}

			// The phone gets the dates the health worker meant.
			status, body := s.postJSON(api.VerifyPath, map[string]any{"code": code}, map[string]string{api.APIKeyHeader: deviceKey})
			var v api.VerifyCodeResponse
			if err := json.Unmarshal(body, &v); status != http.StatusOK || err != nil {
				t.Fatalf("redeem: %d %s", status, body)
			}
			if v.TestDate != tc.local || v.SymptomDate != symptoms {
				t.Errorf("stored dates: test %s, symptoms %s; want %s and %s", v.TestDate, v.SymptomDate, tc.local, symptoms)
			}

			// The device moved to another zone: the form says so, and still
			// offers the account zone's date.
			b.setZone("Europe/Berlin")
			b.open("/ui/issue")
			if w := b.text("#zone-mismatch"); !strings.Contains(w, "Europe/Berlin") || !strings.Contains(w, tc.zone) {
				t.Errorf("warning of a device in another zone: %q", w)
			}
			if d := evalJS[string](b, `document.getElementById('testDate').value`); d != tc.local {
				t.Errorf("test date %s after the device moved, want %s", d, tc.local)
			}
		})
	}
}
