package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/verification/account"
)

func testUser(id, email string) *account.User {
	return &account.User{ID: id, Email: email, Name: "Name " + id, Realms: map[string]account.Role{"wa": account.RoleWorker},
		PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", CreatedAt: base}
}

func testSession(hash, user string, created time.Time, idle time.Duration) *account.Session {
	return &account.Session{Hash: hash, UserID: user, CSRF: "csrf-" + hash, Realm: "wa", CreatedAt: created, LastSeen: created, ExpiresAt: created.Add(idle)}
}

// TestAccounts runs the account-store conformance tests; open returns a
// fresh, empty store.
func TestAccounts(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("users", func(t *testing.T) { testAccountsUsers(t, open) })
	t.Run("concurrent updates are atomic", func(t *testing.T) { testAccountsConcurrentUpdatesAreAtomic(t, open) })
	t.Run("sessions", func(t *testing.T) { testAccountsSessions(t, open) })
	t.Run("expired sessions", func(t *testing.T) { testAccountsExpiredSessions(t, open) })
	t.Run("sign-in throttle", func(t *testing.T) { testAccountsSignInThrottle(t, open) })
	t.Run("concurrent failures all count", func(t *testing.T) { testAccountsConcurrentFailuresAllCount(t, open) })
	t.Run("audit", func(t *testing.T) { testAccountsAudit(t, open) })
}

func testAccountsUsers(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	s := open(t)
	a, b := testUser("u1", "ana@example.org"), testUser("u2", "ben@example.org")
	b.System, b.Realms = true, nil
	for _, u := range []*account.User{b, a} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateUser(ctx, testUser("u3", "ana@example.org")); !errors.Is(err, account.ErrExists) {
		t.Errorf("duplicate email: %v, want ErrExists", err)
	}
	if err := s.CreateUser(ctx, testUser("u1", "other@example.org")); !errors.Is(err, account.ErrExists) {
		t.Errorf("duplicate id: %v, want ErrExists", err)
	}
	if _, err := s.UserByEmail(ctx, "other@example.org"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("a refused user was indexed: %v", err)
	}
	got, err := s.User(ctx, "u1")
	if err != nil || got.Email != a.Email || got.Realms["wa"] != account.RoleWorker || got.PasswordHash != a.PasswordHash || !got.CreatedAt.Equal(base) {
		t.Errorf("User = %+v, %v", got, err)
	}
	if got, err := s.UserByEmail(ctx, "ben@example.org"); err != nil || got.ID != "u2" || !got.System {
		t.Errorf("UserByEmail = %+v, %v", got, err)
	}
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := s.UserByEmail(ctx, "nobody@example.org"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("unknown email: %v", err)
	}
	all, err := s.Users(ctx)
	if err != nil || len(all) != 2 || all[0].Email != "ana@example.org" || all[1].Email != "ben@example.org" {
		t.Errorf("Users = %v, %v; want ana, ben", all, err)
	}

	// A failing fn writes nothing.
	boom := errors.New("boom")
	if _, err := s.UpdateUser(ctx, "u1", func(u *account.User) error { u.Name = "changed"; return boom }); !errors.Is(err, boom) {
		t.Errorf("failing update: %v", err)
	}
	if got, _ := s.User(ctx, "u1"); got.Name != a.Name {
		t.Errorf("a failed update was written: %q", got.Name)
	}
	if _, err := s.UpdateUser(ctx, "nobody", func(*account.User) error { return nil }); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("update of unknown user: %v", err)
	}
	// Invitations are kept with the user, and removed with them.
	up, err := s.UpdateUser(ctx, "u2", func(u *account.User) error {
		u.Invitations = map[string]account.Invitation{"wa": {Role: account.RoleAdmin, By: "ana@example.org"}}
		return nil
	})
	if err != nil || up.Invitations["wa"].Role != account.RoleAdmin {
		t.Fatalf("invite = %+v, %v", up, err)
	}
	if got, err := s.UserByEmail(ctx, "ben@example.org"); err != nil || got.Invitations["wa"] != (account.Invitation{Role: account.RoleAdmin, By: "ana@example.org"}) {
		t.Errorf("invitation read back = %+v, %v", got, err)
	}
	if _, err := s.UpdateUser(ctx, "u2", func(u *account.User) error { delete(u.Invitations, "wa"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.User(ctx, "u2"); len(got.Invitations) != 0 {
		t.Errorf("answered invitation still stored: %+v", got.Invitations)
	}
	// Email changes move the index; a taken email is refused.
	up, err = s.UpdateUser(ctx, "u1", func(u *account.User) error {
		u.Email, u.Realms["or"] = "ana.new@example.org", account.RoleAdmin
		return nil
	})
	if err != nil || up.Email != "ana.new@example.org" || up.Realms["or"] != account.RoleAdmin {
		t.Fatalf("update = %+v, %v", up, err)
	}
	if _, err := s.UserByEmail(ctx, "ana@example.org"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("old email still indexed: %v", err)
	}
	if got, err := s.UserByEmail(ctx, "ana.new@example.org"); err != nil || got.ID != "u1" {
		t.Errorf("new email: %+v, %v", got, err)
	}
	if _, err := s.UpdateUser(ctx, "u1", func(u *account.User) error { u.Email = "ben@example.org"; return nil }); !errors.Is(err, account.ErrExists) {
		t.Errorf("email taken by another: %v, want ErrExists", err)
	}
	if got, _ := s.UserByEmail(ctx, "ben@example.org"); got == nil || got.ID != "u2" {
		t.Errorf("taken email now points to %+v", got)
	}
}

func testAccountsConcurrentUpdatesAreAtomic(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	s := open(t)
	if err := s.CreateUser(ctx, testUser("u1", "ana@example.org")); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateUser(ctx, "u1", func(u *account.User) error { u.TOTPLastStep++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _ := s.User(ctx, "u1"); got.TOTPLastStep != n {
		t.Errorf("after %d concurrent increments: %d", n, got.TOTPLastStep)
	}
}

func testAccountsSessions(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	s := open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	s1, s2, s3 := testSession("h1", "u1", now, time.Hour), testSession("h2", "u1", now, time.Hour), testSession("h3", "u2", now, time.Hour)
	for _, x := range []*account.Session{s1, s2, s3} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, testSession("h1", "u9", now, time.Hour)); !errors.Is(err, account.ErrExists) {
		t.Errorf("duplicate session: %v", err)
	}
	got, err := s.Session(ctx, "h1")
	if err != nil || got.UserID != "u1" || got.CSRF != "csrf-h1" || !got.ExpiresAt.Equal(s1.ExpiresAt) {
		t.Errorf("Session = %+v, %v", got, err)
	}
	if _, err := s.Session(ctx, "nope"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	up, err := s.UpdateSession(ctx, "h1", func(x *account.Session) error {
		x.Realm, x.PendingTOTP, x.EnrolTOTP = "or", true, []byte{1, 2}
		return nil
	})
	if err != nil || up.Realm != "or" {
		t.Fatalf("UpdateSession = %+v, %v", up, err)
	}
	if got, _ := s.Session(ctx, "h1"); got.Realm != "or" || !got.PendingTOTP || len(got.EnrolTOTP) != 2 {
		t.Errorf("updated session = %+v", got)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateSession(ctx, "h1", func(x *account.Session) error { x.Realm = "x"; return boom }); !errors.Is(err, boom) {
		t.Errorf("failing update: %v", err)
	}
	if got, _ := s.Session(ctx, "h1"); got.Realm != "or" {
		t.Errorf("failed update written: %+v", got)
	}
	if _, err := s.UpdateSession(ctx, "nope", func(*account.Session) error { return nil }); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("update of unknown session: %v", err)
	}
	// Sign out everywhere else: h1 kept, h2 gone, u2's h3 untouched.
	if n, err := s.DeleteUserSessions(ctx, "u1", "h1"); err != nil || n != 1 {
		t.Errorf("DeleteUserSessions = %d, %v; want 1", n, err)
	}
	if _, err := s.Session(ctx, "h2"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("h2 survived: %v", err)
	}
	for _, h := range []string{"h1", "h3"} {
		if _, err := s.Session(ctx, h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := s.DeleteSession(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "h1"); err != nil {
		t.Errorf("deleting a deleted session: %v", err)
	}
	if n, err := s.DeleteUserSessions(ctx, "u1", ""); err != nil || n != 0 {
		t.Errorf("DeleteUserSessions with none left = %d, %v", n, err)
	}
}

func testAccountsExpiredSessions(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	s := open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	short, long := testSession("short", "u1", now, time.Minute), testSession("long", "u1", now, time.Hour)
	for _, x := range []*account.Session{short, long} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	// Touching extends a session past a removal that would have taken it.
	if _, err := s.UpdateSession(ctx, "short", func(x *account.Session) error {
		x.LastSeen, x.ExpiresAt = now.Add(30*time.Second), now.Add(3*time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RemoveExpiredSessions(ctx, now.Add(2*time.Minute)); err != nil || n != 0 {
		t.Errorf("RemoveExpiredSessions before any expiry = %d, %v", n, err)
	}
	if n, err := s.RemoveExpiredSessions(ctx, now.Add(3*time.Minute)); err != nil || n != 1 {
		t.Errorf("RemoveExpiredSessions = %d, %v; want 1", n, err)
	}
	if _, err := s.Session(ctx, "short"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("expired session still there: %v", err)
	}
	if _, err := s.Session(ctx, "long"); err != nil {
		t.Errorf("live session removed: %v", err)
	}
}

func testAccountsSignInThrottle(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	s := open(t)
	now := base
	if th, err := s.LoginThrottle(ctx, "k", now); err != nil || th.Failures != 0 {
		t.Errorf("fresh throttle = %+v, %v", th, err)
	}
	for i := 1; i <= 3; i++ {
		th, err := s.AddLoginFailure(ctx, "k", now.Add(time.Duration(i)*time.Minute), 15*time.Minute)
		if err != nil || th.Failures != i || !th.Until.Equal(now.Add(16*time.Minute)) {
			t.Errorf("failure %d = %+v, %v; want until %v", i, th, err, now.Add(16*time.Minute))
		}
	}
	if th, _ := s.LoginThrottle(ctx, "k", now.Add(10*time.Minute)); th.Failures != 3 {
		t.Errorf("throttle within the window = %+v", th)
	}
	if th, _ := s.LoginThrottle(ctx, "other", now.Add(10*time.Minute)); th.Failures != 0 {
		t.Errorf("keys are not separate: %+v", th)
	}
	if th, _ := s.LoginThrottle(ctx, "k", now.Add(16*time.Minute)); th.Failures != 0 {
		t.Errorf("throttle after its window = %+v", th)
	}
	// A failure after the window opens a new one.
	if th, err := s.AddLoginFailure(ctx, "k", now.Add(20*time.Minute), 15*time.Minute); err != nil || th.Failures != 1 || !th.Until.Equal(now.Add(35*time.Minute)) {
		t.Errorf("failure in a new window = %+v, %v", th, err)
	}
	if err := s.ClearLoginFailures(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if th, _ := s.LoginThrottle(ctx, "k", now.Add(21*time.Minute)); th.Failures != 0 {
		t.Errorf("throttle after clearing = %+v", th)
	}
	if err := s.ClearLoginFailures(ctx, "never"); err != nil {
		t.Errorf("clearing an unknown key: %v", err)
	}
}

func testAccountsConcurrentFailuresAllCount(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	s := open(t)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.AddLoginFailure(ctx, "k", base, time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if th, _ := s.LoginThrottle(ctx, "k", base.Add(time.Minute)); th.Failures != 10 {
		t.Errorf("10 concurrent failures counted as %d", th.Failures)
	}
}

func testAccountsAudit(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	s := open(t)
	entry := func(realm string, at time.Time, i int) *account.AuditEntry {
		return &account.AuditEntry{ID: account.AuditIDPrefix(at) + fmt.Sprintf("%08x", i), Time: at, Realm: realm,
			Actor: "ana@example.org", Action: account.ActionUserAdd, Target: fmt.Sprintf("user%d@example.org", i), Detail: "role worker"}
	}
	var wa []*account.AuditEntry
	for i := range 5 {
		e := entry("wa", base.Add(time.Duration(i)*time.Hour), i)
		wa = append(wa, e)
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	refused := entry("w", base, 10)
	refused.Refused, refused.Action = true, account.ActionPasswordReset
	for _, e := range []*account.AuditEntry{refused, entry("wab", base, 11), entry("", base, 12)} {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Audit(ctx, "wa", "", 0)
	if err != nil || len(got) != 5 {
		t.Fatalf("Audit(wa) = %d entries, %v; want 5", len(got), err)
	}
	for i, e := range got {
		if want := wa[4-i]; e.ID != want.ID || e.Target != want.Target || !e.Time.Equal(want.Time) || e.Actor != want.Actor {
			t.Errorf("entry %d = %+v, want %+v (newest first)", i, e, want)
		}
	}
	page, err := s.Audit(ctx, "wa", "", 2)
	if err != nil || len(page) != 2 || page[0].ID != wa[4].ID || page[1].ID != wa[3].ID {
		t.Errorf("first page = %v, %v", page, err)
	}
	page, err = s.Audit(ctx, "wa", wa[3].ID, 2)
	if err != nil || len(page) != 2 || page[0].ID != wa[2].ID || page[1].ID != wa[1].ID {
		t.Errorf("second page = %v, %v", page, err)
	}
	page, err = s.Audit(ctx, "wa", wa[1].ID, 2)
	if err != nil || len(page) != 1 || page[0].ID != wa[0].ID {
		t.Errorf("last page = %v, %v", page, err)
	}
	if got, err := s.Audit(ctx, "w", "", 0); err != nil || len(got) != 1 || !got[0].Refused || got[0].Action != account.ActionPasswordReset {
		t.Errorf("refused entry read back = %+v, %v", got, err)
	}
	for realm, want := range map[string]int{"": 1, "w": 1, "wab": 1, "none": 0} {
		if got, err := s.Audit(ctx, realm, "", 0); err != nil || len(got) != want {
			t.Errorf("Audit(%q) = %d entries, %v; want %d", realm, len(got), err, want)
		}
	}
	n, err := s.RemoveAuditBefore(ctx, base.Add(2*time.Hour))
	if err != nil || n != 5 { // wa 0, 1 and the three at base in w, wab, ""
		t.Errorf("RemoveAuditBefore = %d, %v; want 5", n, err)
	}
	if got, _ := s.Audit(ctx, "wa", "", 0); len(got) != 3 || got[2].ID != wa[2].ID {
		t.Errorf("after retention: %v", got)
	}
}
