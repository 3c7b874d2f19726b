package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/ui"
	"github.com/candor-en/candor/verification/account"
)

// The operator's `candor admin user …` commands act as a system admin: they
// may add an existing account to another realm at once and reset or
// disable any account — and each is recorded in the audit list of every
// realm the person belongs to, not only in the system list, so that no
// realm's admins miss a change made to their people from the command line.
func TestAdminUserCommandsAudited(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := Run(t.Context(), append(args, "--data", dir), nil, &out, &errOut); err != nil {
			t.Fatalf("candor %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	run("admin", "realm", "add", "--name", "wa", "--region", "US-WA")
	run("admin", "realm", "add", "--name", "or", "--region", "US-OR")
	if pw := run("admin", "user", "add", "--realm", "wa", "--email", "vic@example.org", "--role", "admin"); strings.TrimSpace(pw) == "" {
		t.Fatal("no one-time password for a new account")
	}
	// A realm admin of or invites the account; the operator's list shows
	// the open invitation, and the operator's add settles it.
	withAccounts(t, dir, func(accts *account.Service) {
		if _, _, err := accts.AddUser(t.Context(), account.Operator(), account.NewUser{Email: "ben@example.org", Realm: "or", Role: account.RoleAdmin}); err != nil {
			t.Fatal(err)
		}
		ben, err := accts.UserByEmail(t.Context(), "ben@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := accts.AddUser(t.Context(), account.AsUser(ben), account.NewUser{Email: "vic@example.org", Realm: "or", Role: account.RoleWorker}); err != nil {
			t.Fatal(err)
		}
	})
	if list := run("admin", "user", "list"); !strings.Contains(list, "invited to or:worker") {
		t.Errorf("user list does not show the invitation:\n%s", list)
	}
	if pw := run("admin", "user", "add", "--realm", "or", "--email", "vic@example.org", "--role", "worker"); pw != "" {
		t.Errorf("adding an existing account printed %q", pw)
	}
	run("admin", "user", "reset-password", "--email", "vic@example.org")
	run("admin", "user", "disable", "--email", "vic@example.org")

	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	accounts := bolt.NewAccountStore(db)
	u, err := accounts.UserByEmail(t.Context(), "vic@example.org")
	if err != nil || u.Realms["or"] != "worker" || len(u.Invitations) != 0 {
		t.Fatalf("the operator's add: %+v, %v", u, err)
	}
	want := map[string][]string{
		"wa": {"operator user.disable", "operator user.password-reset", "operator user.add", "ben@example.org user.invite", "operator user.add"},
		"or": {"operator user.disable", "operator user.password-reset", "operator user.add", "ben@example.org user.invite"},
	}
	for realm, w := range want {
		es, err := accounts.Audit(t.Context(), realm, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			if e.Target == "vic@example.org" {
				got = append(got, e.Actor+" "+e.Action)
			}
		}
		if strings.Join(got, ", ") != strings.Join(w, ", ") {
			t.Errorf("audit list of %s: %q, want %q", realm, got, w)
		}
	}
}

// The real server bounds sign-in attempts per client address: past
// ui.DefaultSignInsPerAddress a minute the form answers 429 with
// Retry-After, and the refusals are counted by reason, never by address.
func TestE2ESignInLimitPerAddress(t *testing.T) {
	s := startE2EServer(t, "")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(s.url + "/ui/signin")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("sign-in form without token:\n%s", page)
	}
	// Empty passwords: counted, but no password hash is computed.
	form := url.Values{"csrf": {string(m[1])}, "email": {"nobody@example.org"}, "password": {""}}
	for i := 1; i <= ui.DefaultSignInsPerAddress+1; i++ {
		resp, err := c.PostForm(s.url+"/ui/signin", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusBadRequest
		if i > ui.DefaultSignInsPerAddress {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want || (want == http.StatusTooManyRequests) != (resp.Header.Get("Retry-After") != "") {
			t.Fatalf("attempt %d: %d (Retry-After %q), want %d", i, resp.StatusCode, resp.Header.Get("Retry-After"), want)
		}
	}
	metrics := httpGet(t, s.metrics+"/metrics")
	if !strings.Contains(metrics, `candor_ui_signin_refused_total{reason="address"} 1`) || !strings.Contains(metrics, "candor_ui_password_hashes_waiting 0") {
		t.Errorf("metrics:\n%s", grepLines(metrics, "candor_ui_"))
	}
	if strings.Contains(metrics, "127.0.0.1") {
		t.Error("the client address reached the metrics")
	}
}

// withAccounts runs fn on the account service of the stopped server's data
// directory dir.
func withAccounts(t *testing.T, dir string, fn func(*account.Service)) {
	t.Helper()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	accts, err := account.New(bolt.NewAccountStore(db), account.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fn(accts)
}
