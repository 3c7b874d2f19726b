package ui

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/internal/ratelimit"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

const ownPassword = "correct horse battery staple"

var otpRE = regexp.MustCompile(`<code id="one-time-password">`)

// auditOf returns the audit list of realm as "actor action target" lines,
// " refused" appended to refused attempts, newest first.
func (f *fixture) auditOf(realm string) []string {
	f.t.Helper()
	es, err := f.acct.Audit(f.ctx, account.Operator(), realm, "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		line := e.Actor + " " + e.Action + " " + e.Target
		if e.Refused {
			line += " refused"
		}
		out = append(out, line)
	}
	return out
}

// A realm admin tries to take over an account of another realm: add it to
// their realm, reset its password (which would show them a one-time
// password), disable it, change it. Every step that reaches beyond their
// own realm's membership is refused, the person keeps their password and
// sessions, and both realms' audit lists show what was tried.
func TestRealmTakeoverRefused(t *testing.T) {
	f := newFixture(t)
	if _, err := f.ver.CreateRealm(f.ctx, verification.Realm{Name: "or", Region: "US-OR"}); err != nil {
		t.Fatal(err)
	}
	victim := f.signIn("vic@example.org", account.RoleAdmin) // admin of wa
	mal := f.signInNew(account.NewUser{Email: "mal@example.org", Realm: "or", Role: account.RoleAdmin})
	vic, err := f.acct.UserByEmail(f.ctx, "vic@example.org")
	if err != nil {
		t.Fatal(err)
	}
	hash := vic.PasswordHash
	unchanged := func(step string) {
		t.Helper()
		u, err := f.acct.User(f.ctx, vic.ID)
		if err != nil {
			t.Fatal(err)
		}
		if u.PasswordHash != hash || u.Disabled || u.MustChangePassword || u.Realms["wa"] != account.RoleAdmin {
			t.Errorf("%s changed the victim's account: %+v", step, u)
		}
		if st, _ := victim.get("/ui/admin/users"); st != http.StatusOK {
			t.Errorf("%s: the victim's session no longer works: %d", step, st)
		}
	}

	// 1. Adding the existing account only invites it: no membership, no
	// one-time password.
	mal.get("/ui/admin/users")
	st, page := mal.post("/ui/admin/users", url.Values{"email": {"vic@example.org"}, "role": {"admin"}})
	if st != http.StatusOK || otpRE.MatchString(page) || !strings.Contains(page, "they were invited as realm admin") {
		t.Fatalf("add existing account: %d\n%s", st, page)
	}
	if u, _ := f.acct.User(f.ctx, vic.ID); u.Realms["or"] != "" || u.Invitations["or"].Role != account.RoleAdmin {
		t.Fatalf("after the invitation: realms %v, invitations %v", u.Realms, u.Invitations)
	}
	unchanged("the invitation")

	// 2. Nothing of the account can be touched while it is not a member.
	for _, action := range []string{"reset", "disable", "role", "remove"} {
		mal.get("/ui/admin/users")
		st, page := mal.post("/ui/admin/users/"+vic.ID+"/"+action, url.Values{"role": {"worker"}})
		if st == http.StatusOK || otpRE.MatchString(page) {
			t.Errorf("%s of a non-member: %d", action, st)
		}
		unchanged(action + " of a non-member")
	}
	if st, _ := mal.get("/ui/admin/users/" + vic.ID + "/reset"); st != http.StatusNotFound {
		t.Errorf("reset confirmation of a non-member: %d", st)
	}

	// 3. The person answers the invitation at their next sign-in; say they
	// accept it.
	victim.post("/ui/signout", nil)
	victim.get("/ui/signin")
	st, page = victim.post("/ui/signin", url.Values{"email": {"vic@example.org"}, "password": {ownPassword}})
	if st != http.StatusOK || !strings.Contains(page, "mal@example.org invited you to work in realm or") {
		t.Fatalf("sign-in with an open invitation: %d\n%s", st, page)
	}
	if st, page = victim.post("/ui/invitations", url.Values{"realm": {"or"}, "answer": {"accept"}}); st != http.StatusOK || !strings.Contains(page, "You joined realm or") {
		t.Fatalf("accept: %d\n%s", st, page)
	}

	// 4. Now a member of both realms: the admin of one still cannot change
	// the account, which would reach into the other.
	_, page = mal.get("/ui/admin/users")
	if strings.Contains(page, "/ui/admin/users/"+vic.ID+"/reset") || strings.Contains(page, "/ui/admin/users/"+vic.ID+"/disable") {
		t.Error("the users page offers to reset or disable a member of another realm")
	}
	for _, action := range []string{"reset", "disable"} {
		if st, page := mal.get("/ui/admin/users/" + vic.ID + "/" + action); st != http.StatusForbidden || !strings.Contains(page, "only a system admin") {
			t.Errorf("%s confirmation of a member of another realm: %d", action, st)
		}
		mal.get("/ui/admin/users")
		st, page := mal.post("/ui/admin/users/"+vic.ID+"/"+action, nil)
		if st != http.StatusForbidden || otpRE.MatchString(page) || !strings.Contains(page, "only a system admin") {
			t.Errorf("%s of a member of another realm: %d", action, st)
		}
		unchanged(action + " of a member of another realm")
	}
	// The membership in their own realm is theirs to manage.
	mal.get("/ui/admin/users")
	if st, _ := mal.post("/ui/admin/users/"+vic.ID+"/role", url.Values{"role": {"worker"}}); st != http.StatusOK {
		t.Errorf("role in the own realm: %d", st)
	}
	mal.get("/ui/admin/users")
	if st, _ := mal.post("/ui/admin/users/"+vic.ID+"/remove", nil); st != http.StatusOK {
		t.Errorf("remove from the own realm: %d", st)
	}
	if u, _ := f.acct.User(f.ctx, vic.ID); u.Realms["or"] != "" {
		t.Errorf("still in or: %v", u.Realms)
	}
	unchanged("removal from or")

	// 5. Both audit lists show every attempt and action, newest first.
	want := []string{
		"mal@example.org user.remove vic@example.org",
		"mal@example.org user.role vic@example.org",
		"mal@example.org user.disable vic@example.org refused",
		"mal@example.org user.password-reset vic@example.org refused",
		"vic@example.org user.invite-accept vic@example.org",
		"mal@example.org user.remove vic@example.org refused",
		"mal@example.org user.role vic@example.org refused",
		"mal@example.org user.disable vic@example.org refused",
		"mal@example.org user.password-reset vic@example.org refused",
		"mal@example.org user.invite vic@example.org",
	}
	for _, realm := range []string{"wa", "or"} {
		got := f.auditOf(realm)
		if len(got) < len(want) || strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") {
			t.Errorf("audit list of %s:\n%s\nwant first:\n%s", realm, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// The victim, an admin of wa, sees them on the audit page.
	_, page = victim.get("/ui/admin/audit")
	if n := strings.Count(page, "refused</strong>"); n != 6 {
		t.Errorf("the audit page of wa shows %d refused attempts, want 6", n)
	}

	// 6. The person still signs in with their own password.
	victim.post("/ui/signout", nil)
	victim.get("/ui/signin")
	if st, page := victim.post("/ui/signin", url.Values{"email": {"vic@example.org"}, "password": {ownPassword}}); st != http.StatusOK || !strings.Contains(page, "Issue a verification code") {
		t.Errorf("the victim's own sign-in: %d", st)
	}
}

// serveWith replaces f's server by one over acct, after setup has
// configured the handler and echo.
func (f *fixture) serveWith(acct *account.Service, setup func(*Handler, *echo.Echo)) {
	f.t.Helper()
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := New(Options{Accounts: acct, Verification: f.ver, Log: log})
	if err != nil {
		f.t.Fatal(err)
	}
	e := web.NewEcho(log, nil)
	setup(h, e)
	h.Register(e)
	f.srv = httptest.NewServer(e)
	f.acct = acct
	f.t.Cleanup(f.srv.Close)
}

// signInFrom posts the sign-in form as a client at addr (X-Forwarded-For
// from the loopback proxy) and returns the status, page and headers.
func (b *browser) signInFrom(addr, email, password string) (int, string, http.Header) {
	b.f.t.Helper()
	b.get("/ui/signin")
	v := url.Values{"email": {email}, "password": {password}, "csrf": {b.csrf()}}
	req, _ := http.NewRequest(http.MethodPost, b.f.srv.URL+"/ui/signin", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	return b.do(req)
}

// One address that floods the sign-in form gets 429 with Retry-After, before
// any password is checked; another address still signs in; the address is
// in no log line.
func TestSignInLimitPerAddress(t *testing.T) {
	f := newFixture(t)
	f.signIn("ana@example.org", account.RoleWorker)
	f.serveWith(f.acct, func(h *Handler, e *echo.Echo) {
		h.LimitSignIns(SignInLimits{Limiter: ratelimit.New(ratelimit.NewMemoryCounter(), ratelimit.NewMemorySecrets(), ratelimit.Options{}), PerAddress: 3})
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	})
	const flooder, other = "198.51.100.7", "203.0.113.9"
	b := f.browser()
	for i := range 3 {
		if st, _, _ := b.signInFrom(flooder, "nobody"+string(rune('a'+i))+"@example.org", "wrong password"); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, st)
		}
	}
	// Over the bound even the right password is not checked.
	st, page, hd := b.signInFrom(flooder, "ana@example.org", ownPassword)
	if st != http.StatusTooManyRequests || hd.Get("Retry-After") == "" || hd.Get("X-RateLimit-Limit") != "3" || !strings.Contains(page, "Too many sign-in attempts from your network") {
		t.Errorf("fourth attempt: %d %v", st, hd)
	}
	if st, _ := b.get("/ui/issue"); st != http.StatusOK || !strings.Contains(b.last, "<h1>Sign in</h1>") {
		t.Errorf("a refused attempt opened a session")
	}
	if st, page, _ := f.browser().signInFrom(other, "ana@example.org", ownPassword); st != http.StatusOK || !strings.Contains(page, "Issue a verification code") {
		t.Errorf("sign-in from another address: %d", st)
	}
	if strings.Contains(f.logs.String(), flooder) {
		t.Error("the client address reached the logs")
	}
}

// A flood of sign-ins fills the password-hash queue; sign-ins beyond it are
// answered 503 with Retry-After at once — while the queue is still full —
// instead of waiting behind it; once it drains, sign-in works again.
func TestSignInQueueAnswersBusy(t *testing.T) {
	f := newFixture(t)
	f.signIn("ana@example.org", account.RoleWorker)
	acct, err := account.New(f.store, account.Options{Password: account.PasswordParams{Memory: 64, Time: 1, Threads: 1}, ConcurrentHashes: 1, HashQueue: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.serveWith(acct, func(*Handler, *echo.Echo) {})
	// An account whose stored hash is slow to check (its parameters are in
	// the hash) keeps the only slot busy for a while.
	slow, _, err := acct.AddUser(f.ctx, account.Operator(), account.NewUser{Email: "slow@example.org", Realm: "wa", Role: account.RoleWorker})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.UpdateUser(f.ctx, slow.ID, func(u *account.User) error {
		u.PasswordHash = "$argon2id$v=19$m=65536,t=4,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	flood := []*browser{f.browser(), f.browser()}
	for _, b := range flood {
		b.get("/ui/signin")
	}
	var wg sync.WaitGroup
	for _, b := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := url.Values{"email": {"slow@example.org"}, "password": {"guess"}, "csrf": {b.csrf()}}
			resp, err := b.c.PostForm(f.srv.URL+"/ui/signin", v)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	full := func() bool { running, waiting := acct.HashLoad(); return running == 1 && waiting == 1 }
	for deadline := time.Now().Add(20 * time.Second); !full(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the flood never filled the queue")
		}
	}
	for i := range 3 {
		st, page, hd := f.browser().signInFrom("", "ana@example.org", ownPassword)
		if st != http.StatusServiceUnavailable || hd.Get("Retry-After") != "2" || !strings.Contains(page, "The server is busy") {
			t.Errorf("sign-in %d with the queue full: %d %q", i+1, st, hd.Get("Retry-After"))
		}
	}
	if !full() {
		t.Error("the busy answers waited for the queue to drain")
	}
	wg.Wait()
	if st, page, _ := f.browser().signInFrom("", "ana@example.org", ownPassword); st != http.StatusOK || !strings.Contains(page, "Issue a verification code") {
		t.Errorf("sign-in after the flood: %d", st)
	}
}

// The realm that invited an account may withdraw its invitation; another
// realm's admin may not, and both realms' lists record it.
func TestWithdrawInvitation(t *testing.T) {
	f := newFixture(t)
	if _, err := f.ver.CreateRealm(f.ctx, verification.Realm{Name: "or", Region: "US-OR"}); err != nil {
		t.Fatal(err)
	}
	f.signIn("vic@example.org", account.RoleWorker)
	wa := f.signIn("ben@example.org", account.RoleAdmin)
	or := f.signInNew(account.NewUser{Email: "mal@example.org", Realm: "or", Role: account.RoleAdmin})
	vic, _ := f.acct.UserByEmail(f.ctx, "vic@example.org")
	or.get("/ui/admin/users")
	or.post("/ui/admin/users", url.Values{"email": {"vic@example.org"}, "role": {"worker"}})
	if !strings.Contains(or.last, "/ui/admin/invitations/"+vic.ID+"/withdraw") {
		t.Fatal("the users page has no withdraw button for the invitation")
	}
	wa.get("/ui/admin/users")
	if st, _ := wa.post("/ui/admin/invitations/"+vic.ID+"/withdraw", nil); st != http.StatusBadRequest {
		t.Errorf("another realm's admin withdraws: %d", st)
	}
	if st, page := or.post("/ui/admin/invitations/"+vic.ID+"/withdraw", nil); st != http.StatusOK || !strings.Contains(page, "The invitation was withdrawn") {
		t.Errorf("withdraw: %d", st)
	}
	if u, _ := f.acct.User(f.ctx, vic.ID); len(u.Invitations) != 0 || u.Realms["or"] != "" {
		t.Errorf("after withdrawal: %+v", u)
	}
	for _, realm := range []string{"wa", "or"} {
		if got := f.auditOf(realm); len(got) < 2 || got[0] != "mal@example.org user.invite-withdraw vic@example.org" || got[1] != "mal@example.org user.invite vic@example.org" {
			t.Errorf("audit list of %s: %q", realm, got)
		}
	}
}
