package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/verification"
)

// The operator's realm and API key commands are recorded in the audit list
// as the web UI's are: by the verification service, under "operator".
func TestAdminCommandsAudited(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := Run(t.Context(), append(args, "--data", dir), nil, &out, &errOut); err != nil {
			t.Fatalf("candor %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	run("admin", "realm", "add", "--name", "wa", "--region", "US-WA")
	_, created := run("admin", "apikey", "add", "--realm", "wa", "--kind", "admin", "--name", "lab")
	m := regexp.MustCompile(`API key (\S+) of realm wa created`).FindStringSubmatch(created)
	if m == nil {
		t.Fatalf("apikey add said %q", created)
	}
	id := m[1]
	run("admin", "apikey", "revoke", "--realm", "wa", "--id", id)
	run("admin", "realm", "set", "--name", "wa", "--daily-quota", "50")

	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	accounts := bolt.NewAccountStore(db)
	for realm, want := range map[string][]string{
		"":   {"operator realm.add wa region US-WA"},
		"wa": {fmt.Sprintf("operator realm.policy wa daily quota %d → 50", verification.DefaultDailyQuota), `operator apikey.revoke ` + id + ` admin key "lab"`, `operator apikey.add ` + id + ` admin key "lab"`},
	} {
		es, err := accounts.Audit(t.Context(), realm, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, strings.Join([]string{e.Actor, e.Action, e.Target, e.Detail}, " "))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("audit list of %q:\n%s\nwant\n%s", realm, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
