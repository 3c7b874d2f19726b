package ui

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// lockedBuffer collects log output from concurrent requests.
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

// fixture is the UI on an httptest server over a bbolt store, with realm
// "wa" and its device key.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	srv    *httptest.Server
	ver    *verification.Service
	acct   *account.Service
	store  account.Store
	device string
	logs   *lockedBuffer
	now    time.Time
}

func newFixture(t *testing.T, mod ...func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	master, err := keyset.OpenMasterFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: context.Background(), logs: &lockedBuffer{}, now: time.Now()}
	var opts Options
	for _, m := range mod {
		m(&opts)
	}
	// The UI and the verification service share the clock.
	if f.ver, err = verification.New(f.ctx, bolt.NewVerificationStore(db), db, master, verification.Options{LinkBase: func() string { return "https://verify.example" }, Now: opts.Now,
		Auditor: verification.AuditFunc(func(ctx context.Context, by account.Actor, realm, action, target, detail string) error {
			return f.acct.Record(ctx, by, realm, action, target, detail)
		})}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ver.CreateRealm(f.ctx, verification.Realm{Name: "wa", Region: "US-WA"}); err != nil {
		t.Fatal(err)
	}
	if f.device, _, err = f.ver.CreateAPIKey(f.ctx, "wa", verification.DeviceKey, "app"); err != nil {
		t.Fatal(err)
	}
	ring, err := keyset.Open(f.ctx, db, master, "ui/totp-secrets", keyset.PurposeAEAD, keyset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	aead, err := ring.AEAD()
	if err != nil {
		t.Fatal(err)
	}
	f.store = bolt.NewAccountStore(db)
	if f.acct, err = account.New(f.store, account.Options{Password: account.PasswordParams{Memory: 64, Time: 1, Threads: 1}, Sealer: aead}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Accounts, opts.Verification, opts.Log = f.acct, f.ver, log
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e := web.NewEcho(log, nil)
	h.Register(e)
	f.srv = httptest.NewServer(e)
	t.Cleanup(f.srv.Close)
	return f
}

// browser is a cookie-keeping client that reads forms' CSRF tokens, as a
// browser without JavaScript would submit them.
type browser struct {
	f    *fixture
	c    *http.Client
	last string // body of the last page
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf() string {
	m := csrfRE.FindStringSubmatch(b.last)
	if m == nil {
		return ""
	}
	return m[1]
}

func (b *browser) do(req *http.Request) (int, string, http.Header) {
	b.f.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		b.last = string(body)
	}
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) get(path string) (int, string) {
	b.f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.f.srv.URL+path, nil)
	st, body, _ := b.do(req)
	return st, body
}

// post submits a form with the last page's CSRF token (unless v has one).
func (b *browser) post(path string, v url.Values) (int, string) {
	b.f.t.Helper()
	if v == nil {
		v = url.Values{}
	}
	if _, ok := v["csrf"]; !ok {
		v.Set("csrf", b.csrf())
	}
	req, _ := http.NewRequest(http.MethodPost, b.f.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	st, body, _ := b.do(req)
	return st, body
}

// signIn adds a user through the operator and signs in, choosing a
// password on the way.
func (f *fixture) signIn(email string, role account.Role) *browser {
	f.t.Helper()
	nu := account.NewUser{Email: email, Realm: "wa", Role: role}
	if role == "system" {
		nu = account.NewUser{Email: email, System: true}
	}
	return f.signInNew(nu)
}

// signInNew adds nu through the operator and signs in, choosing a
// password on the way.
func (f *fixture) signInNew(nu account.NewUser) *browser {
	f.t.Helper()
	email := nu.Email
	_, otp, err := f.acct.AddUser(f.ctx, account.Operator(), nu)
	if err != nil {
		f.t.Fatal(err)
	}
	b := f.browser()
	b.get("/ui/signin")
	if st, body := b.post("/ui/signin", url.Values{"email": {email}, "password": {otp}}); st != 200 || !strings.Contains(body, "Choose your own password to continue") {
		f.t.Fatalf("first sign-in: %d\n%s", st, body)
	}
	if st, body := b.post("/ui/account/password", url.Values{"current": {otp}, "new": {"correct horse battery staple"}, "confirm": {"correct horse battery staple"}}); st != 200 || strings.Contains(body, "Choose your own password") {
		f.t.Fatalf("choose password: %d\n%s", st, body)
	}
	if st, body := b.post("/ui/account/timezone", url.Values{"timezone": {"UTC"}}); st != 200 || strings.Contains(body, "<h1>Your time zone</h1>") {
		f.t.Fatalf("choose time zone: %d\n%s", st, body)
	}
	return b
}

func TestSecurityHeadersAndAssets(t *testing.T) {
	for _, secure := range []bool{false, true} {
		f := newFixture(t, func(o *Options) { o.SecureCookies = secure })
		resp, err := http.Get(f.srv.URL + "/ui/signin")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %s", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("CSP allows unsafe: %s", csp)
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
			if h.Get(k) != want {
				t.Errorf("%s: %q, want %q", k, h.Get(k), want)
			}
		}
		if secure != (h.Get("Strict-Transport-Security") != "") {
			t.Errorf("secure=%v: HSTS %q", secure, h.Get("Strict-Transport-Security"))
		}
		ck := h.Get("Set-Cookie")
		if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") || secure != strings.Contains(ck, "Secure") || secure != strings.HasPrefix(ck, "__Host-") {
			t.Errorf("secure=%v: cookie %q", secure, ck)
		}
		// Assets: embedded, cacheable for good under their version.
		for _, m := range regexp.MustCompile(`(?:href|src)="(/ui/assets/[^"]+)"`).FindAllStringSubmatch(string(body), -1) {
			r, err := http.Get(f.srv.URL + m[1])
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
				t.Errorf("%s: %d %q", m[1], r.StatusCode, r.Header.Get("Cache-Control"))
			}
		}
	}
	// No inline script or style, no event-handler attributes, nothing from
	// another origin, in any template or asset.
	checks := map[string]*regexp.Regexp{
		"inline script": regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), "style attribute": regexp.MustCompile(`\sstyle=`),
		"event handler": regexp.MustCompile(`\son[a-z]+=`), "external URL": regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
	}
	for _, dir := range []string{"templates", "assets"} {
		fsys := templateFS
		if dir == "assets" {
			fsys = assetFS
		}
		entries, _ := fsys.ReadDir(dir)
		for _, e := range entries {
			b, _ := fsys.ReadFile(dir + "/" + e.Name())
			for name, re := range checks {
				if strings.HasSuffix(e.Name(), ".html") && re.Match(b) {
					t.Errorf("%s/%s has an %s", dir, e.Name(), name)
				}
			}
			if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
				t.Errorf("%s/%s refers to another site", dir, e.Name())
			}
		}
	}
}

var (
	codeRE     = regexp.MustCompile(`<span id="short-code" aria-hidden="true">([0-9 ]+)</span>`)
	trackingRE = regexp.MustCompile(`<code id="tracking-id">([0-9a-f-]{36})</code>`)
	formUUIDRE = regexp.MustCompile(`name="uuid" value="([0-9a-f-]{36})"`)
)

// A health worker issues a code with plain HTML forms (no script), the
// phone redeems it, and the UI shows it as used; resending the form issues
// nothing; nothing secret reaches the logs.
func TestIssueWithoutJavaScript(t *testing.T) {
	f := newFixture(t)
	b := f.signIn("ana@example.org", account.RoleWorker)
	st, page := b.get("/ui/issue")
	if st != 200 || !strings.Contains(page, "Issue a verification code") {
		t.Fatalf("issue form: %d", st)
	}
	uuid := formUUIDRE.FindStringSubmatch(page)[1]
	form := url.Values{"testType": {"confirmed"}, "testDate": {time.Now().UTC().Format("2006-01-02")}, "uuid": {uuid}, "csrf": {b.csrf()}}
	st, page = b.post("/ui/issue", form)
	m := codeRE.FindStringSubmatch(page)
	if st != 200 || m == nil {
		t.Fatalf("issue: %d\n%s", st, page)
	}
	code := strings.ReplaceAll(m[1], " ", "")
	tracking := trackingRE.FindStringSubmatch(page)[1]
	if tracking != uuid {
		t.Errorf("tracking ID %s, want the form's %s", tracking, uuid)
	}
	for _, want := range []string{`<svg class="qr"`, "https://verify.example/v?c=", `data-expires="`, "Valid until"} {
		if !strings.Contains(page, want) {
			t.Errorf("issued page lacks %q", want)
		}
	}
	// Sending the same form again (a reload) issues no second code.
	st, page = b.post("/ui/issue", form)
	if st != http.StatusConflict || !strings.Contains(page, "This form was already sent") || codeRE.MatchString(page) {
		t.Errorf("resent form: %d", st)
	}
	caller, err := f.ver.Authenticate(f.ctx, f.device, verification.DeviceKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ver.Verify(f.ctx, caller, &api.VerifyCodeRequest{VerificationCode: code}); err != nil {
		t.Fatalf("redeem the UI's code: %v", err)
	}
	if _, page = b.get("/ui/codes?uuid=" + tracking); !strings.Contains(page, "Used: the app has redeemed this code.") {
		t.Errorf("code status page:\n%s", page)
	}
	if strings.Contains(f.logs.String(), code) {
		t.Error("the code reached the logs")
	}
	// A date in the future is refused, pointing at the field.
	b.get("/ui/issue")
	form.Set("uuid", formUUIDRE.FindStringSubmatch(b.last)[1])
	form.Set("testDate", time.Now().AddDate(0, 0, 3).Format("2006-01-02"))
	form.Set("csrf", b.csrf())
	if st, page = b.post("/ui/issue", form); st != 400 || !strings.Contains(page, `id="testDate-error"`) {
		t.Errorf("future date: %d", st)
	}
}

func TestExpireCode(t *testing.T) {
	f := newFixture(t)
	b := f.signIn("ana@example.org", account.RoleWorker)
	_, page := b.get("/ui/issue")
	_, page = b.post("/ui/issue", url.Values{"testType": {"likely"}, "uuid": {formUUIDRE.FindStringSubmatch(page)[1]}})
	tracking := trackingRE.FindStringSubmatch(page)[1]
	b.get("/ui/codes?uuid=" + tracking)
	st, page := b.post("/ui/codes/expire", url.Values{"uuid": {tracking}})
	if st != 200 || !strings.Contains(page, "The code was expired") || !strings.Contains(page, "Expired: neither the code nor the link") {
		t.Errorf("expire: %d\n%s", st, page)
	}
	if _, page = b.get("/ui/codes?uuid=00000000-0000-4000-8000-000000000000"); !strings.Contains(page, "No code with this tracking ID") {
		t.Error("unknown tracking ID")
	}
	es, _ := f.acct.Audit(f.ctx, account.Operator(), "wa", "", 0)
	if len(es) == 0 || es[0].Action != account.ActionCodeExpire || es[0].Target != tracking || es[0].Actor != "ana@example.org" {
		t.Errorf("audit: %+v", es)
	}
}

func TestCSRF(t *testing.T) {
	f := newFixture(t)
	b := f.signIn("ana@example.org", account.RoleWorker)
	_, page := b.get("/ui/issue")
	uuid := formUUIDRE.FindStringSubmatch(page)[1]
	for name, v := range map[string]url.Values{
		"no token":    {"testType": {"confirmed"}, "uuid": {uuid}, "csrf": {""}},
		"wrong token": {"testType": {"confirmed"}, "uuid": {uuid}, "csrf": {"AAAA" + b.csrf()[4:]}},
	} {
		if st, page := b.post("/ui/issue", v); st != http.StatusForbidden || !strings.Contains(page, "This form was refused") {
			t.Errorf("%s: %d", name, st)
		}
	}
	// The right token from another site is refused too.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/issue", strings.NewReader(url.Values{"testType": {"confirmed"}, "uuid": {uuid}, "csrf": {b.csrf()}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if st, _, _ := b.do(req); st != http.StatusForbidden {
		t.Errorf("cross-site post: %d", st)
	}
	// Nothing was issued.
	if _, err := f.ver.CodeStatus(f.ctx, &verification.Caller{Realm: &verification.Realm{Name: "wa"}}, uuid); verification.ErrorCode(err) != api.ErrVerifyCodeNotFound {
		t.Errorf("a refused form issued a code: %v", err)
	}
	// Sign-in needs its double-submit token.
	fresh := f.browser()
	if st, _ := fresh.post("/ui/signin", url.Values{"email": {"ana@example.org"}, "password": {"correct horse battery staple"}}); st != http.StatusForbidden {
		t.Errorf("sign-in without the form's token: %d", st)
	}
	// A JSON call needs the header.
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/ui/bulk/issue", strings.NewReader(`{"rows":[{"row":1,"testType":"confirmed","uuid":"`+uuid+`"}]}`))
	req.Header.Set("Content-Type", "application/json")
	if st, _, _ := b.do(req); st != http.StatusForbidden {
		t.Errorf("script call without X-CSRF-Token: %d", st)
	}
}

func TestRoles(t *testing.T) {
	f := newFixture(t)
	worker := f.signIn("ana@example.org", account.RoleWorker)
	admin := f.signIn("ben@example.org", account.RoleAdmin)
	sys := f.signIn("sys@example.org", "system")
	adminPages := []string{"/ui/stats", "/ui/admin/users", "/ui/admin/apikeys", "/ui/admin/policy", "/ui/admin/audit"}
	for _, p := range append(adminPages, "/ui/system/realms") {
		if st, page := worker.get(p); st != http.StatusForbidden || !strings.Contains(page, "You cannot open this page") {
			t.Errorf("worker GET %s: %d", p, st)
		}
	}
	worker.get("/ui/issue")
	if st, _ := worker.post("/ui/admin/users", url.Values{"email": {"x@example.org"}, "role": {"admin"}}); st != http.StatusForbidden {
		t.Errorf("worker adds a user: %d", st)
	}
	for _, p := range adminPages {
		if st, _ := admin.get(p); st != 200 {
			t.Errorf("admin GET %s: %d", p, st)
		}
	}
	if st, _ := admin.get("/ui/system/realms"); st != http.StatusForbidden {
		t.Errorf("realm admin GET /ui/system/realms: %d", st)
	}
	if st, _ := sys.get("/ui/system/realms"); st != 200 {
		t.Errorf("system admin GET /ui/system/realms: %d", st)
	}
	// Not signed in: pages redirect to sign-in, posts are refused.
	anon := f.browser()
	if st, page := anon.get("/ui/stats"); st != 200 || !strings.Contains(page, "<h1>Sign in</h1>") || !strings.Contains(page, `name="next" value="/ui/stats"`) {
		t.Errorf("anonymous GET: %d", st)
	}
	if st, _ := worker.get("/ui/nope"); st != http.StatusNotFound {
		t.Errorf("unknown page: %d", st)
	}
	// A worker cannot switch to a realm they do not belong to.
	if _, err := f.ver.CreateRealm(f.ctx, verification.Realm{Name: "or", Region: "US-OR"}); err != nil {
		t.Fatal(err)
	}
	worker.get("/ui/issue")
	if st, _ := worker.post("/ui/realm", url.Values{"realm": {"or"}}); st != http.StatusForbidden {
		t.Errorf("switch to a foreign realm: %d", st)
	}
	sys.get("/ui/issue")
	if st, page := sys.post("/ui/realm", url.Values{"realm": {"or"}}); st != 200 || !strings.Contains(page, `<option value="or" selected>`) {
		t.Errorf("system admin switches realm: %d", st)
	}
}

func TestSignInThrottleAndSignOut(t *testing.T) {
	f := newFixture(t)
	f.signIn("ana@example.org", account.RoleWorker)
	b := f.browser()
	for i := 1; i <= 5; i++ {
		b.get("/ui/signin")
		st, page := b.post("/ui/signin", url.Values{"email": {"ana@example.org"}, "password": {"wrong"}})
		want := http.StatusUnauthorized
		if i == 5 {
			want = http.StatusTooManyRequests
		}
		if st != want {
			t.Errorf("attempt %d: %d, want %d", i, st, want)
		}
		if i == 5 && !strings.Contains(page, "Too many failed sign-in attempts") {
			t.Errorf("fifth attempt page lacks the lock message")
		}
	}
	b.get("/ui/signin")
	if st, _ := b.post("/ui/signin", url.Values{"email": {"ana@example.org"}, "password": {"correct horse battery staple"}}); st != http.StatusTooManyRequests {
		t.Errorf("right password while locked: %d", st)
	}
	// Sign out ends the session on the server.
	c := f.signIn("ben@example.org", account.RoleWorker)
	c.get("/ui/issue")
	cookies := c.c.Jar.Cookies(mustURL(f.srv.URL + "/ui/"))
	if st, page := c.post("/ui/signout", nil); st != 200 || !strings.Contains(page, "You are signed out.") {
		t.Errorf("sign out: %d", st)
	}
	replay := f.browser()
	replay.c.Jar.SetCookies(mustURL(f.srv.URL+"/ui/"), cookies)
	if _, page := replay.get("/ui/issue"); !strings.Contains(page, "<h1>Sign in</h1>") {
		t.Error("the signed-out session's cookie still works")
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

var secretRE = regexp.MustCompile(`<code class="secret">([A-Z2-7 ]+)</code>`)

func TestTOTPInTheBrowser(t *testing.T) {
	f := newFixture(t)
	b := f.signIn("ana@example.org", account.RoleWorker)
	st, page := b.get("/ui/account/totp")
	m := secretRE.FindStringSubmatch(page)
	if st != 200 || m == nil || !strings.Contains(page, `<svg class="qr"`) {
		t.Fatalf("TOTP set-up page: %d\n%s", st, page)
	}
	secret := decodeBase32(t, m[1])
	code := account.TOTPCode(secret, account.TOTPStep(time.Now()), 6)
	if st, page = b.post("/ui/account/totp", url.Values{"code": {code}}); st != 200 || !strings.Contains(page, "Two-step sign-in is on") {
		t.Fatalf("confirm TOTP: %d", st)
	}
	b.post("/ui/signout", nil)
	b.get("/ui/signin")
	st, page = b.post("/ui/signin", url.Values{"email": {"ana@example.org"}, "password": {"correct horse battery staple"}})
	if st != 200 || !strings.Contains(page, "Enter the code from your authenticator app") {
		t.Fatalf("sign-in with TOTP: %d", st)
	}
	// Pages need the second factor first.
	if _, page := b.get("/ui/issue"); !strings.Contains(page, "Enter the code from your authenticator app") {
		t.Error("a half signed-in session opened the issue page")
	}
	// Starting over from the sign-in form while half signed in works.
	b.get("/ui/signin")
	if st, page = b.post("/ui/signin", url.Values{"email": {"ana@example.org"}, "password": {"correct horse battery staple"}}); st != 200 || !strings.Contains(page, "Enter the code from your authenticator app") {
		t.Errorf("sign-in again while waiting for the second factor: %d", st)
	}
	if st, _ = b.post("/ui/signin/totp", url.Values{"code": {code}}); st != http.StatusUnauthorized {
		t.Errorf("a used TOTP code was accepted again: %d", st)
	}
	next := account.TOTPCode(secret, account.TOTPStep(time.Now())+1, 6)
	if st, page = b.post("/ui/signin/totp", url.Values{"code": {next}}); st != 200 || !strings.Contains(page, "Issue a verification code") {
		t.Errorf("second factor: %d", st)
	}
}

func decodeBase32(t *testing.T, s string) []byte {
	t.Helper()
	s = strings.ReplaceAll(s, " ", "")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var out []byte
	var buf, bits uint
	for _, c := range s {
		buf = buf<<5 | uint(strings.IndexRune(alphabet, c))
		bits += 5
		if bits >= 8 {
			out = append(out, byte(buf>>(bits-8)))
			bits -= 8
		}
	}
	return out
}

func TestAdminPages(t *testing.T) {
	f := newFixture(t)
	b := f.signIn("ben@example.org", account.RoleAdmin)

	// Users: add, the one-time password shown once; change role; reset.
	b.get("/ui/admin/users")
	st, page := b.post("/ui/admin/users", url.Values{"email": {"cara@example.org"}, "name": {"Cara"}, "role": {"worker"}})
	m := regexp.MustCompile(`<code id="one-time-password">([a-z0-9-]+)</code>`).FindStringSubmatch(page)
	if st != 200 || m == nil {
		t.Fatalf("add user: %d\n%s", st, page)
	}
	cara, err := f.acct.UserByEmail(f.ctx, "cara@example.org")
	if err != nil || cara.Realms["wa"] != account.RoleWorker {
		t.Fatalf("added user %+v, %v", cara, err)
	}
	b.get("/ui/admin/users")
	if st, _ = b.post("/ui/admin/users/"+cara.ID+"/role", url.Values{"role": {"admin"}}); st != 200 {
		t.Errorf("change role: %d", st)
	}
	if st, page = b.get("/ui/admin/users/" + cara.ID + "/reset"); st != 200 || !strings.Contains(page, "Reset the password of cara@example.org?") {
		t.Errorf("reset confirmation: %d", st)
	}
	if st, page = b.post("/ui/admin/users/"+cara.ID+"/reset", nil); st != 200 || !strings.Contains(page, "New one-time password for cara@example.org") {
		t.Errorf("reset: %d", st)
	}

	// API keys: the secret is shown once; revoking takes effect at once.
	b.get("/ui/admin/apikeys")
	st, page = b.post("/ui/admin/apikeys", url.Values{"name": {"iOS app"}, "kind": {"device"}})
	km := regexp.MustCompile(`<code id="api-key-secret">(cd_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(page)
	if st != 200 || km == nil {
		t.Fatalf("create key: %d", st)
	}
	if _, page = b.get("/ui/admin/apikeys"); strings.Contains(page, km[1]) {
		t.Error("the key's secret is shown again")
	}
	c, err := f.ver.Authenticate(f.ctx, km[1], verification.DeviceKey)
	if err != nil {
		t.Fatal(err)
	}
	b.get("/ui/admin/apikeys/" + c.Key.ID + "/revoke")
	if st, _ = b.post("/ui/admin/apikeys/"+c.Key.ID+"/revoke", nil); st != 200 {
		t.Errorf("revoke: %d", st)
	}
	if _, err := f.ver.Authenticate(f.ctx, km[1], verification.DeviceKey); err == nil {
		t.Error("a revoked key still works")
	}

	// Code policy: invalid values are refused with reasons; valid ones saved.
	b.get("/ui/admin/policy")
	policy := url.Values{"shortLength": {"4"}, "shortMinutes": {"10"}, "longLength": {"16"}, "longHours": {"24"}, "quota": {"500"}, "testTypes": {"confirmed", "likely"}}
	if st, page = b.post("/ui/admin/policy", policy); st != 400 || !strings.Contains(page, "Short code length 4: must be 6 to 16") {
		t.Errorf("invalid policy: %d", st)
	}
	policy.Set("shortLength", "10")
	policy.Set("csrf", b.csrf())
	if st, page = b.post("/ui/admin/policy", policy); st != 200 || !strings.Contains(page, "The code policy was saved") {
		t.Errorf("save policy: %d", st)
	}
	r, _ := f.ver.Realm(f.ctx, "wa")
	if r.ShortCodeLength != 10 || r.ShortCodeLifetime != 10*time.Minute || r.DailyQuota != 500 || len(r.TestTypes) != 2 {
		t.Errorf("realm after policy change: %+v", r)
	}

	// The audit list shows it all, names staff, and holds no secret.
	_, page = b.get("/ui/admin/audit")
	for _, want := range []string{"user.add", "user.role", "user.password-reset", "apikey.add", "apikey.revoke", "realm.policy", "short code length 8 → 10", "ben@example.org"} {
		if !strings.Contains(page, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	if strings.Contains(page, km[1]) || strings.Contains(page, m[1]) {
		t.Error("the audit page holds a secret")
	}

	// Statistics.
	if st, page = b.get("/ui/stats?days=7"); st != 200 || strings.Count(page, `class="bar s-`) != 7*3+7 {
		t.Errorf("stats: %d, %d bars", st, strings.Count(page, `class="bar s-`))
	}
}

func TestSystemAdminAddsRealm(t *testing.T) {
	var added []string
	f := newFixture(t, func(o *Options) {
		o.AddRealm = func(ctx context.Context, r verification.Realm) (*verification.Realm, error) {
			added = append(added, r.Name)
			return o.Verification.CreateRealm(ctx, r)
		}
	})
	b := f.signIn("sys@example.org", "system")
	b.get("/ui/system/realms")
	if st, page := b.post("/ui/system/realms", url.Values{"name": {"Bad Name"}, "region": {"X"}}); st != 400 || !strings.Contains(page, "lower-case") {
		t.Errorf("bad realm name: %d", st)
	}
	if st, page := b.post("/ui/system/realms", url.Values{"name": {"or"}, "region": {"US-OR"}}); st != 200 || !strings.Contains(page, "Realm or was created") {
		t.Errorf("add realm: %d", st)
	}
	if len(added) != 1 || added[0] != "or" {
		t.Errorf("AddRealm hook: %v", added)
	}
}

// bulkPost uploads csvText to path as the form field "file".
func (b *browser) bulkPost(path, csvText string, header map[string]string) (int, string, http.Header) {
	b.f.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", b.csrf())
	fw, _ := mw.CreateFormFile("file", "people.csv")
	fw.Write([]byte(csvText))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.f.srv.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

const bulkCSV = "testType,symptomDate,testDate,ref,phone\nconfirmed,,,lab-1,+15555550100\nlikely,,,lab-2,\nwrong,,,lab-3,\n"

// Without JavaScript the bulk form answers with the results file; the same
// file again issues nothing twice.
func TestBulkWithoutJavaScript(t *testing.T) {
	f := newFixture(t)
	b := f.signIn("ana@example.org", account.RoleWorker)
	b.get("/ui/bulk")
	st, body, h := b.bulkPost("/ui/bulk", bulkCSV, nil)
	if st != 200 || !strings.HasPrefix(h.Get("Content-Disposition"), `attachment; filename="candor-codes-wa-`) {
		t.Fatalf("bulk: %d %v\n%s", st, h, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 4 || strings.Join(rows[0], ",") != strings.Join(resultsHeader(), ",") {
		t.Fatalf("results %q, %v", rows, err)
	}
	if rows[1][2] != "issued" || rows[2][2] != "issued" || rows[3][2] != "failed" || !strings.Contains(rows[3][12], "not a test type") {
		t.Errorf("statuses: %q", rows)
	}
	if strings.Contains(body, "5555550100") || strings.Contains(f.logs.String(), "5555550100") {
		t.Error("the phone number column was echoed or logged")
	}
	b.get("/ui/bulk")
	_, body, _ = b.bulkPost("/ui/bulk", bulkCSV, nil)
	rows, _ = csv.NewReader(strings.NewReader(body)).ReadAll()
	if rows[1][2] != "issued-earlier" || rows[1][3] != "" || rows[2][2] != "issued-earlier" {
		t.Errorf("second upload: %q", rows)
	}
	// A broken file is explained on the form.
	b.get("/ui/bulk")
	if st, body, _ = b.bulkPost("/ui/bulk", "name\nana\n", nil); st != 400 || !strings.Contains(body, `a header row with a &#34;testType&#34; column`) {
		t.Errorf("broken file: %d\n%s", st, body)
	}
}

// The script's endpoints: parse, then issue in batches.
func TestBulkScriptEndpoints(t *testing.T) {
	f := newFixture(t)
	b := f.signIn("ana@example.org", account.RoleWorker)
	b.get("/ui/bulk")
	token := b.csrf()
	st, body, _ := b.bulkPost("/ui/bulk/parse", bulkCSV, map[string]string{"X-CSRF-Token": token})
	var parsed struct{ Rows []bulkRow }
	if err := json.Unmarshal([]byte(body), &parsed); st != 200 || err != nil || len(parsed.Rows) != 3 {
		t.Fatalf("parse: %d %s", st, body)
	}
	reqBody, _ := json.Marshal(map[string]any{"rows": parsed.Rows, "zone": "Europe/Berlin"})
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/bulk/issue", bytes.NewReader(reqBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", token)
	st, body, _ = b.do(req)
	var issued struct{ Results []bulkResult }
	if err := json.Unmarshal([]byte(body), &issued); st != 200 || err != nil || len(issued.Results) != 3 {
		t.Fatalf("issue: %d %s", st, body)
	}
	if r := issued.Results[0]; r.Status != statusIssued || len(r.Code) != 8 || r.UUID != parsed.Rows[0].UUID || r.ExpiresAt == 0 {
		t.Errorf("first result %+v", r)
	}
	if issued.Results[2].Status != statusFailed {
		t.Errorf("bad row: %+v", issued.Results[2])
	}
}

func TestParseBulkCSV(t *testing.T) {
	rows, hash, err := parseBulkCSV([]byte("\ufeffReference,Test Type,Test_Date\n a , Confirmed ,2026-11-20\nb,likely,\n"), "wa", "2026-11-20", 10)
	if err != nil || len(rows) != 2 || len(hash) != 64 {
		t.Fatalf("header file: %v, %v", rows, err)
	}
	if r := rows[0]; r.Ref != "a" || r.TestType != "confirmed" || r.TestDate != "2026-11-20" || r.Row != 1 || r.Error != "" {
		t.Errorf("row 1: %+v", r)
	}
	// No header: positional columns.
	rows, _, err = parseBulkCSV([]byte("confirmed,2026-11-18,2026-11-19,x\nnegative\n"), "wa", "2026-11-20", 10)
	if err != nil || len(rows) != 2 || rows[0].SymptomDate != "2026-11-18" || rows[0].Ref != "x" || rows[1].TestType != "negative" {
		t.Errorf("positional: %+v, %v", rows, err)
	}
	// Tracking IDs: stable for one file and day, different otherwise, or
	// taken from a uuid column.
	a, _, _ := parseBulkCSV([]byte("confirmed\nconfirmed\n"), "wa", "2026-11-20", 10)
	again, _, _ := parseBulkCSV([]byte("confirmed\nconfirmed\n"), "wa", "2026-11-20", 10)
	nextDay, _, _ := parseBulkCSV([]byte("confirmed\nconfirmed\n"), "wa", "2026-11-21", 10)
	other, _, _ := parseBulkCSV([]byte("confirmed\nconfirmed\nlikely\n"), "wa", "2026-11-20", 10)
	if a[0].UUID != again[0].UUID || a[0].UUID == a[1].UUID || a[0].UUID == nextDay[0].UUID || a[0].UUID == other[0].UUID {
		t.Errorf("derived UUIDs: %s %s %s %s %s", a[0].UUID, again[0].UUID, a[1].UUID, nextDay[0].UUID, other[0].UUID)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a[0].UUID) {
		t.Errorf("derived UUID %s is not a version 8 UUID", a[0].UUID)
	}
	withID, _, _ := parseBulkCSV([]byte("testType,uuid\nconfirmed,0190C3D2-1234-7ABC-8DEF-0123456789AB\n"), "wa", "d", 10)
	if withID[0].UUID != "0190c3d2-1234-7abc-8def-0123456789ab" {
		t.Errorf("uuid column: %s", withID[0].UUID)
	}
	for name, in := range map[string]string{
		"empty":          "",
		"header only":    "testType,testDate\n",
		"too many rows":  strings.Repeat("confirmed\n", 11),
		"no type column": "ref,date\nx,y\n",
		"not csv":        "confirmed,\"unterminated\n",
		"not utf-8":      "confirmed,\xff\n",
	} {
		if _, _, err := parseBulkCSV([]byte(in), "wa", "d", 10); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if rows, _, _ := parseBulkCSV([]byte("testType,ref\npositive,a\n,b\n"), "wa", "d", 10); len(rows) != 2 || rows[0].Error == "" || rows[1].Error == "" {
		t.Errorf("bad test types not flagged: %+v", rows)
	}
}

func TestResultsCSVDefusesFormulas(t *testing.T) {
	var buf bytes.Buffer
	writeResults(&buf, []bulkResult{{bulkRow: bulkRow{Row: 1, Ref: "=cmd|' /C calc'!A0", TestType: "+x"}, Status: statusFailed}}, time.UTC)
	rows, _ := csv.NewReader(&buf).ReadAll()
	if rows[1][1] != "'=cmd|' /C calc'!A0" || rows[1][9] != "'+x" {
		t.Errorf("row %q", rows[1])
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/stats?days=7": "/ui/stats?days=7", "//evil.example/ui/": "", "https://evil.example": "",
		"/ui/signin": "", "/api/issue": "", `/ui/\evil`: "",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQRAndChart(t *testing.T) {
	q, err := newQR("https://verify.example/v?c=abcdefghijklmnop", `label with "quotes" & <tags>`)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(q.SVG())
	if !strings.HasPrefix(svg, `<svg class="qr"`) || !strings.Contains(svg, `aria-label="label with &#34;quotes&#34; &amp; &lt;tags&gt;"`) || !strings.Contains(svg, `<path d="M4 4h7v1h-7z`) {
		t.Errorf("QR SVG %s", svg[:200])
	}
	c := &chartSpec{ID: "c", Title: "T <x>", Labels: []string{"a", "b"}, Series: []series{{Name: "n", Class: "s", Values: []float64{1, 7}}}}
	out := string(c.SVG())
	if strings.Count(out, `<rect class="bar s"`) != 2 || !strings.Contains(out, "T &lt;x&gt;") || !strings.Contains(out, ">10</text>") {
		t.Errorf("chart %s", out)
	}
	if niceMax(7) != 10 || niceMax(11) != 20 || niceMax(0) != 1 || niceMax(250) != 500 {
		t.Error("niceMax")
	}
}
