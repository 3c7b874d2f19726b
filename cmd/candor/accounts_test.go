package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/candor-en/candor/storage/bolt"
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
		"wa": {"operator user.disable", "operator user.password-reset", "operator user.add", "operator user.add"},
		"or": {"operator user.disable", "operator user.password-reset", "operator user.add"},
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
