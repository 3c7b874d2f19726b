package account_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/verification/account"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the time and moves it on by a microsecond, so that events
// are ordered.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Microsecond)
	return c.t
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gcmSealer is an AES-GCM Sealer for tests.
type gcmSealer struct{ aead cipher.AEAD }

func newSealer(t *testing.T) *gcmSealer {
	key := make([]byte, 32)
	rand.Read(key)
	b, _ := aes.NewCipher(key)
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmSealer{g}
}

func (s *gcmSealer) Encrypt(p, ad []byte) ([]byte, error) {
	n := make([]byte, s.aead.NonceSize())
	rand.Read(n)
	return s.aead.Seal(n, n, p, ad), nil
}

func (s *gcmSealer) Decrypt(c, ad []byte) ([]byte, error) {
	if len(c) < s.aead.NonceSize() {
		return nil, errors.New("short")
	}
	return s.aead.Open(nil, c[:s.aead.NonceSize()], c[s.aead.NonceSize():], ad)
}

type fixture struct {
	ctx   context.Context
	svc   *account.Service
	store account.Store
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{ctx: context.Background(), store: bolt.NewAccountStore(db), clock: &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}}
	f.svc, err = account.New(f.store, account.Options{
		Now: f.clock.Now, Password: account.PasswordParams{Memory: 64, Time: 1, Threads: 1}, Sealer: newSealer(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// addUser creates a user through the operator and sets their password.
func (f *fixture) addUser(t *testing.T, email, realm string, role account.Role, system bool) (*account.User, string) {
	t.Helper()
	u, otp, err := f.svc.AddUser(f.ctx, account.Operator(), account.NewUser{Email: email, Realm: realm, Role: role, System: system})
	if err != nil {
		t.Fatal(err)
	}
	if otp == "" || !u.MustChangePassword {
		t.Fatalf("new user without one-time password: %+v", u)
	}
	in, err := f.svc.SignIn(f.ctx, email, otp)
	if err != nil {
		t.Fatal(err)
	}
	const pw = "correct horse battery staple"
	if _, err := f.svc.ChangePassword(f.ctx, in.Session, in.User, otp, pw); err != nil {
		t.Fatal(err)
	}
	u, _ = f.svc.User(f.ctx, u.ID)
	return u, pw
}

func TestSignInAndSessions(t *testing.T) {
	f := newFixture(t)
	u, pw := f.addUser(t, "ana@example.org", "wa", account.RoleWorker, false)
	if u.MustChangePassword {
		t.Error("must still change the password after changing it")
	}
	in, err := f.svc.SignIn(f.ctx, " ANA@example.org", pw)
	if err != nil {
		t.Fatal(err)
	}
	if in.Session.PendingTOTP || in.Session.Realm != "wa" || in.Session.Hash == in.Token || len(in.Token) < 40 {
		t.Errorf("session %+v", in.Session)
	}
	sess, got, err := f.svc.Authenticate(f.ctx, in.Token)
	if err != nil || got.ID != u.ID || !account.CheckCSRF(sess, in.Session.CSRF) || account.CheckCSRF(sess, "x") {
		t.Fatalf("Authenticate = %+v, %+v, %v", sess, got, err)
	}
	// Idle expiry slides with use; the absolute limit does not.
	for range 12 {
		f.clock.Add(59 * time.Minute)
		if _, _, err := f.svc.Authenticate(f.ctx, in.Token); err != nil {
			t.Fatalf("session ended while in use: %v", err)
		}
	}
	f.clock.Add(13 * time.Minute) // 12 h 1 min after sign-in
	if _, _, err := f.svc.Authenticate(f.ctx, in.Token); !errors.Is(err, account.ErrNoSession) {
		t.Errorf("session past the absolute limit: %v", err)
	}
	in, _ = f.svc.SignIn(f.ctx, "ana@example.org", pw)
	f.clock.Add(61 * time.Minute)
	if _, _, err := f.svc.Authenticate(f.ctx, in.Token); !errors.Is(err, account.ErrNoSession) {
		t.Errorf("idle session: %v", err)
	}
	in, _ = f.svc.SignIn(f.ctx, "ana@example.org", pw)
	if err := f.svc.SignOut(f.ctx, in.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(f.ctx, in.Token); !errors.Is(err, account.ErrNoSession) {
		t.Errorf("signed-out session: %v", err)
	}
	if _, _, err := f.svc.Authenticate(f.ctx, "forged"); !errors.Is(err, account.ErrNoSession) {
		t.Errorf("forged token: %v", err)
	}
}

func TestSignInThrottle(t *testing.T) {
	f := newFixture(t)
	_, pw := f.addUser(t, "ana@example.org", "wa", account.RoleWorker, false)
	for i := 1; i <= 5; i++ {
		_, err := f.svc.SignIn(f.ctx, "ana@example.org", "wrong password")
		var te *account.ThrottledError
		if i < 5 && !errors.Is(err, account.ErrBadCredentials) || i == 5 && !errors.As(err, &te) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var te *account.ThrottledError
	if _, err := f.svc.SignIn(f.ctx, "ana@example.org", pw); !errors.As(err, &te) || te.RetryAfter < 14*time.Minute || te.RetryAfter > 15*time.Minute {
		t.Fatalf("right password while throttled: %v", err)
	}
	// Unknown emails answer like wrong passwords, and are throttled alike.
	for i := 1; i <= 5; i++ {
		_, err := f.svc.SignIn(f.ctx, "nobody@example.org", "whatever")
		if i < 5 && !errors.Is(err, account.ErrBadCredentials) || i == 5 && !errors.As(err, &te) {
			t.Fatalf("unknown email attempt %d: %v", i, err)
		}
	}
	f.clock.Add(15 * time.Minute)
	if _, err := f.svc.SignIn(f.ctx, "ana@example.org", pw); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// A success clears the count.
	for range 4 {
		f.svc.SignIn(f.ctx, "ana@example.org", "wrong")
	}
	f.svc.SignIn(f.ctx, "ana@example.org", pw)
	if _, err := f.svc.SignIn(f.ctx, "ana@example.org", "wrong"); !errors.Is(err, account.ErrBadCredentials) {
		t.Errorf("failures were not cleared by a success: %v", err)
	}
}

func TestChangePasswordEndsOtherSessions(t *testing.T) {
	f := newFixture(t)
	_, pw := f.addUser(t, "ana@example.org", "wa", account.RoleWorker, false)
	a, _ := f.svc.SignIn(f.ctx, "ana@example.org", pw)
	b, _ := f.svc.SignIn(f.ctx, "ana@example.org", pw)
	if _, err := f.svc.ChangePassword(f.ctx, a.Session, a.User, "not it", "a new long password"); !errors.Is(err, account.ErrBadPassword) {
		t.Errorf("wrong current password: %v", err)
	}
	var pe *account.PasswordError
	if _, err := f.svc.ChangePassword(f.ctx, a.Session, a.User, pw, "short"); !errors.As(err, &pe) {
		t.Errorf("weak password: %v", err)
	}
	in, err := f.svc.ChangePassword(f.ctx, a.Session, a.User, pw, "a new long password")
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"old token of this browser": a.Token, "other browser": b.Token} {
		if _, _, err := f.svc.Authenticate(f.ctx, tok); !errors.Is(err, account.ErrNoSession) {
			t.Errorf("%s still valid: %v", name, err)
		}
	}
	if _, _, err := f.svc.Authenticate(f.ctx, in.Token); err != nil {
		t.Errorf("new token: %v", err)
	}
	if _, err := f.svc.SignIn(f.ctx, "ana@example.org", pw); err == nil {
		t.Error("old password still works")
	}
}

func TestTOTP(t *testing.T) {
	f := newFixture(t)
	u, pw := f.addUser(t, "ana@example.org", "wa", account.RoleAdmin, false)
	in, _ := f.svc.SignIn(f.ctx, "ana@example.org", pw)
	secret, err := f.svc.BeginTOTP(f.ctx, in.Session, u)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := f.svc.BeginTOTP(f.ctx, in.Session, u)
	if string(again) != string(secret) {
		t.Error("a second BeginTOTP drew a new secret")
	}
	if _, err := f.svc.ConfirmTOTP(f.ctx, in.Session, u, "000000x"); !errors.Is(err, account.ErrBadTOTP) {
		t.Errorf("wrong confirmation: %v", err)
	}
	code := func() string { return account.TOTPCode(secret, account.TOTPStep(f.clock.Now()), 6) }
	if u, err = f.svc.ConfirmTOTP(f.ctx, in.Session, u, code()); err != nil || !u.HasTOTP() {
		t.Fatalf("confirm: %v", err)
	}
	// Sign-in now needs the second factor, and a code works once.
	in, err = f.svc.SignIn(f.ctx, "ana@example.org", pw)
	if err != nil || !in.Session.PendingTOTP {
		t.Fatalf("sign-in with TOTP: %+v, %v", in, err)
	}
	if _, err := f.svc.CompleteTOTP(f.ctx, in.Session, in.User, code()); !errors.Is(err, account.ErrBadTOTP) {
		t.Errorf("the enrolment code was accepted again: %v", err)
	}
	f.clock.Add(30 * time.Second)
	done, err := f.svc.CompleteTOTP(f.ctx, in.Session, in.User, code())
	if err != nil || done.Session.PendingTOTP || done.Token == in.Token {
		t.Fatalf("complete: %+v, %v", done, err)
	}
	if _, _, err := f.svc.Authenticate(f.ctx, in.Token); !errors.Is(err, account.ErrNoSession) {
		t.Error("the pre-TOTP token survived")
	}
	// Wrong codes count toward the throttle.
	in, _ = f.svc.SignIn(f.ctx, "ana@example.org", pw)
	var te *account.ThrottledError
	for i := 1; i <= 5; i++ {
		_, err := f.svc.CompleteTOTP(f.ctx, in.Session, in.User, "abcdef")
		if i == 5 && !errors.As(err, &te) {
			t.Errorf("5th wrong TOTP: %v", err)
		}
	}
	// Disabling needs the password.
	if _, err := f.svc.DisableTOTP(f.ctx, u, "wrong"); err == nil {
		t.Error("disabled TOTP with a wrong password")
	}
	f.clock.Add(15 * time.Minute)
	if u, err = f.svc.DisableTOTP(f.ctx, u, pw); err != nil || u.HasTOTP() {
		t.Errorf("disable: %v", err)
	}
	es, _ := f.svc.Audit(f.ctx, account.AsUser(u), "wa", "", 0)
	if len(es) < 2 || es[0].Action != account.ActionTOTPDisable || es[1].Action != account.ActionTOTPEnable {
		t.Errorf("audit after TOTP changes: %+v", es)
	}
}

func TestAdminActions(t *testing.T) {
	f := newFixture(t)
	admin, _ := f.addUser(t, "admin@example.org", "wa", account.RoleAdmin, false)
	worker, _ := f.addUser(t, "worker@example.org", "wa", account.RoleWorker, false)
	other, _ := f.addUser(t, "other@example.org", "or", account.RoleAdmin, false)
	sys, _ := f.addUser(t, "sys@example.org", "", "", true)
	asAdmin, asWorker, asOther, asSys := account.AsUser(admin), account.AsUser(worker), account.AsUser(other), account.AsUser(sys)

	// Workers manage nobody; admins only their realm; only system admins make system admins.
	if _, _, err := f.svc.AddUser(f.ctx, asWorker, account.NewUser{Email: "x@example.org", Realm: "wa", Role: account.RoleWorker}); !errors.Is(err, account.ErrForbidden) {
		t.Errorf("worker adds a user: %v", err)
	}
	if _, _, err := f.svc.AddUser(f.ctx, asOther, account.NewUser{Email: "x@example.org", Realm: "wa", Role: account.RoleWorker}); !errors.Is(err, account.ErrForbidden) {
		t.Errorf("admin of another realm adds a user: %v", err)
	}
	if _, _, err := f.svc.AddUser(f.ctx, asAdmin, account.NewUser{Email: "x@example.org", System: true}); !errors.Is(err, account.ErrForbidden) {
		t.Errorf("realm admin makes a system admin: %v", err)
	}
	if _, err := f.svc.RealmUsers(f.ctx, asWorker, "wa"); !errors.Is(err, account.ErrForbidden) {
		t.Errorf("worker lists users: %v", err)
	}
	// A realm admin only invites an existing account; it joins when the
	// person accepts, keeping their password.
	u, otp, err := f.svc.AddUser(f.ctx, asAdmin, account.NewUser{Email: "other@example.org", Realm: "wa", Role: account.RoleWorker})
	if err != nil || otp != "" || u.Realms["wa"] != "" || u.Invitations["wa"] != (account.Invitation{Role: account.RoleWorker, By: "admin@example.org"}) {
		t.Errorf("invite existing user: %+v, %q, %v", u, otp, err)
	}
	if u, err = f.svc.AnswerInvitation(f.ctx, u, "wa", true); err != nil || u.Realms["wa"] != account.RoleWorker || u.Realms["or"] != account.RoleAdmin || len(u.Invitations) != 0 {
		t.Errorf("accept: %+v, %v", u, err)
	}
	if _, _, err := f.svc.AddUser(f.ctx, asAdmin, account.NewUser{Email: "other@example.org", Realm: "wa", Role: account.RoleWorker}); err == nil {
		t.Error("added a member twice")
	}
	users, err := f.svc.RealmUsers(f.ctx, asAdmin, "wa")
	if err != nil || len(users) != 3 {
		t.Errorf("wa users: %d, %v", len(users), err)
	}
	if _, err := f.svc.SetRole(f.ctx, asAdmin, "wa", admin.ID, account.RoleWorker); err == nil {
		t.Error("an admin demoted themselves")
	}
	if u, err := f.svc.SetRole(f.ctx, asAdmin, "wa", worker.ID, account.RoleAdmin); err != nil || u.Realms["wa"] != account.RoleAdmin {
		t.Errorf("promote: %v", err)
	}
	if _, err := f.svc.SetRole(f.ctx, asAdmin, "wa", sys.ID, account.RoleWorker); err == nil {
		t.Error("changed a non-member")
	}
	// Reset: new one-time password, sessions ended, second factor gone.
	in, _ := f.svc.SignIn(f.ctx, "worker@example.org", "correct horse battery staple")
	_, otp, err = f.svc.ResetPassword(f.ctx, asAdmin, "wa", worker.ID)
	if err != nil || otp == "" {
		t.Fatalf("reset: %q, %v", otp, err)
	}
	if _, _, err := f.svc.Authenticate(f.ctx, in.Token); !errors.Is(err, account.ErrNoSession) {
		t.Error("reset left a session")
	}
	if in, err := f.svc.SignIn(f.ctx, "worker@example.org", otp); err != nil || !in.User.MustChangePassword {
		t.Errorf("sign in with reset password: %v", err)
	}
	// Removing the last realm disables and signs out.
	in, _ = f.svc.SignIn(f.ctx, "worker@example.org", otp)
	if u, err := f.svc.RemoveFromRealm(f.ctx, asAdmin, "wa", worker.ID); err != nil || !u.Disabled {
		t.Errorf("remove: %+v, %v", u, err)
	}
	if _, _, err := f.svc.Authenticate(f.ctx, in.Token); !errors.Is(err, account.ErrNoSession) {
		t.Error("removed user still signed in")
	}
	if _, err := f.svc.SignIn(f.ctx, "worker@example.org", otp); !errors.Is(err, account.ErrBadCredentials) {
		t.Errorf("disabled user signs in: %v", err)
	}
	// The audit list names who did what; realm admins read their realm's.
	es, err := f.svc.Audit(f.ctx, asAdmin, "wa", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		a := e.Actor + " " + e.Action + " " + e.Target
		if e.Refused {
			a += " (refused)"
		}
		actions = append(actions, a)
	}
	want := []string{
		"admin@example.org user.remove worker@example.org",
		"admin@example.org user.password-reset worker@example.org",
		"admin@example.org user.role sys@example.org (refused)",
		"admin@example.org user.role worker@example.org",
		"other@example.org user.invite-accept other@example.org",
		"admin@example.org user.invite other@example.org",
		"operator user.add worker@example.org",
		"operator user.add admin@example.org",
	}
	if len(actions) != len(want) {
		t.Fatalf("audit = %q\nwant %q", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Errorf("audit[%d] = %q, want %q", i, actions[i], want[i])
		}
	}
	if _, err := f.svc.Audit(f.ctx, asOther, "wa", "", 0); !errors.Is(err, account.ErrForbidden) {
		t.Errorf("admin of another realm reads wa's audit list: %v", err)
	}
	if _, err := f.svc.Audit(f.ctx, asAdmin, "", "", 0); !errors.Is(err, account.ErrForbidden) {
		t.Errorf("realm admin reads the system list: %v", err)
	}
	// The system admin's list shows the refused attempt on them too.
	if es, err := f.svc.Audit(f.ctx, asSys, "", "", 0); err != nil || len(es) != 2 || !es[0].Refused || es[0].Detail != "in realm wa; refused: not a member of realm wa" || es[1].Detail != "system admin" {
		t.Errorf("system list: %+v, %v", es, err)
	}
}

// Changes of the account itself need an admin of every realm of the person
// (or a system admin); invitations are answered by the person, and a
// password reset or the revival of an abandoned account withdraws them.
func TestAccountChangesNeedEveryRealm(t *testing.T) {
	f := newFixture(t)
	both, _ := f.addUser(t, "both@example.org", "wa", account.RoleAdmin, false)
	if _, _, err := f.svc.AddUser(f.ctx, account.Operator(), account.NewUser{Email: "both@example.org", Realm: "or", Role: account.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	waAdmin, _ := f.addUser(t, "wa-admin@example.org", "wa", account.RoleAdmin, false)
	sys, _ := f.addUser(t, "sys@example.org", "", "", true)
	person, _ := f.addUser(t, "person@example.org", "wa", account.RoleWorker, false)
	if _, _, err := f.svc.AddUser(f.ctx, account.Operator(), account.NewUser{Email: "person@example.org", Realm: "or", Role: account.RoleWorker}); err != nil {
		t.Fatal(err)
	}
	asBoth, asWA, asSys := account.AsUser(mustUser(t, f, both.ID)), account.AsUser(waAdmin), account.AsUser(sys)
	person = mustUser(t, f, person.ID)

	for _, c := range []struct {
		name    string
		by      account.Actor
		manages bool
	}{
		{"admin of one of the realms", asWA, false},
		{"admin of both realms", asBoth, true},
		{"system admin", asSys, true},
		{"operator", account.Operator(), true},
	} {
		if got := f.svc.ManagesAccount(c.by, person); got != c.manages {
			t.Errorf("%s: ManagesAccount = %v", c.name, got)
		}
		_, otp, err := f.svc.ResetPassword(f.ctx, c.by, "wa", person.ID)
		_, derr := f.svc.SetDisabled(f.ctx, c.by, "wa", person.ID, false)
		if c.manages != (err == nil && otp != "") || c.manages != (derr == nil) {
			t.Errorf("%s: reset %q, %v; enable %v", c.name, otp, err, derr)
		}
		if !c.manages && (!errors.Is(err, account.ErrOtherRealms) || !errors.Is(derr, account.ErrOtherRealms)) {
			t.Errorf("%s: %v, %v; want ErrOtherRealms", c.name, err, derr)
		}
	}
	// Membership changes stay the realm's own.
	if u, err := f.svc.SetRole(f.ctx, asWA, "wa", person.ID, account.RoleAdmin); err != nil || u.Realms["wa"] != account.RoleAdmin || u.Realms["or"] != account.RoleWorker {
		t.Errorf("role in the own realm: %+v, %v", u, err)
	}

	// An invitation is declined, or withdrawn by a password reset: whoever
	// reads the one-time password must not accept it for the person.
	if _, _, err := f.svc.AddUser(f.ctx, asWA, account.NewUser{Email: "sys@example.org", Realm: "wa", Role: account.RoleWorker}); err != nil {
		t.Fatal(err)
	}
	u, err := f.svc.AnswerInvitation(f.ctx, mustUser(t, f, sys.ID), "wa", false)
	if err != nil || u.Realms["wa"] != "" || len(u.Invitations) != 0 {
		t.Errorf("decline: %+v, %v", u, err)
	}
	if _, err := f.svc.AnswerInvitation(f.ctx, u, "wa", true); err == nil {
		t.Error("accepted an invitation that was declined")
	}
	if _, _, err := f.svc.AddUser(f.ctx, account.AsUser(mustUser(t, f, both.ID)), account.NewUser{Email: "wa-admin@example.org", Realm: "or", Role: account.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if u, _, err := f.svc.ResetPassword(f.ctx, asBoth, "wa", waAdmin.ID); err != nil || len(u.Invitations) != 0 {
		t.Errorf("reset left the invitations: %+v, %v", u, err)
	}
	// An account removed from its last realm is nobody's: adding it again
	// revives it with a new one-time password and without the invitations
	// it had.
	if _, _, err := f.svc.AddUser(f.ctx, asBoth, account.NewUser{Email: "person@example.org", Realm: "wa", Role: account.RoleWorker}); err == nil {
		t.Error("added a member twice")
	}
	if _, err := f.svc.RemoveFromRealm(f.ctx, asBoth, "or", person.ID); err != nil {
		t.Fatal(err)
	}
	if u, _, err := f.svc.AddUser(f.ctx, asBoth, account.NewUser{Email: "person@example.org", Realm: "or", Role: account.RoleWorker}); err != nil || len(u.Invitations) != 1 {
		t.Fatalf("invite: %+v, %v", u, err)
	}
	if u, err := f.svc.RemoveFromRealm(f.ctx, asBoth, "wa", person.ID); err != nil || !u.Disabled {
		t.Fatalf("remove from the last realm: %+v, %v", u, err)
	}
	u, otp, err := f.svc.AddUser(f.ctx, asWA, account.NewUser{Email: "person@example.org", Realm: "wa", Role: account.RoleWorker})
	if err != nil || otp == "" || u.Disabled || u.Realms["wa"] != account.RoleWorker || len(u.Invitations) != 0 {
		t.Errorf("revive: %+v, %q, %v", u, otp, err)
	}
}

func mustUser(t *testing.T, f *fixture, id string) *account.User {
	t.Helper()
	u, err := f.svc.User(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
