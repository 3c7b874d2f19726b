package verification_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// auditList is an Auditor keeping its entries as "actor realm action
// target detail" lines.
type auditList struct {
	mu      sync.Mutex
	entries []string
}

func (l *auditList) Record(_ context.Context, by account.Actor, realm, action, target, detail string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, strings.Join([]string{by.Name, realm, action, target, detail}, "|"))
	return nil
}

func (l *auditList) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	es := l.entries
	l.entries = nil
	return es
}

// The service records the admin actions, so every door is audited alike:
// the admin API's /api/expirecode under its API key, and the UI's and the
// operator's actions under the actor their context carries.
func TestAdminActionsAudited(t *testing.T) {
	list := &auditList{}
	h := newHTTPFixture(t, func(o *verification.Options) { o.Auditor = list })
	if es := list.take(); len(es) != 0 {
		t.Fatalf("actions without an actor were recorded: %q", es)
	}

	code := h.issue(api.IssueCodeRequest{TestType: "confirmed"})
	if r := h.post(api.ExpireCodePath, h.adminKey, api.ExpireCodeRequest{UUID: code.UUID}); r.status != 200 {
		t.Fatalf("expire: %d %s", r.status, r.raw)
	}
	admin := h.caller(h.adminKey, verification.AdminKey)
	if es := list.take(); len(es) != 1 || es[0] != "API key "+admin.Key.ID+"|wa|"+account.ActionCodeExpire+"|"+code.UUID+"|" {
		t.Errorf("/api/expirecode recorded %q", es)
	}

	ctx := verification.NewContextWithActor(h.ctx, account.Operator())
	if _, err := h.svc.CreateRealm(ctx, verification.Realm{Name: "or", Region: "US-OR"}); err != nil {
		t.Fatal(err)
	}
	_, k, err := h.svc.CreateAPIKey(ctx, "or", verification.DeviceKey, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.RevokeAPIKey(ctx, "or", k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.UpdateRealm(ctx, "or", func(r *verification.Realm) error { r.DailyQuota, r.Maintenance = 7, true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.UpdateRealm(ctx, "or", func(r *verification.Realm) error { return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"operator||realm.add|or|region US-OR",
		`operator|or|apikey.add|` + k.ID + `|device key "app"`,
		`operator|or|apikey.revoke|` + k.ID + `|device key "app"`,
		"operator|or|realm.policy|or|daily quota 0 → 7; maintenance false → true",
	}
	if es := list.take(); strings.Join(es, "\n") != strings.Join(want, "\n") {
		t.Errorf("recorded\n%s\nwant\n%s", strings.Join(es, "\n"), strings.Join(want, "\n"))
	}
}
