package verification

import (
	"context"
	"fmt"
	"strings"

	"github.com/candor-en/candor/verification/account"
)

// Auditor records an admin action in the internal audit list, by the actor,
// in realm ("" for a system action). *account.Service is the Auditor of a
// server.
type Auditor interface {
	Record(ctx context.Context, by account.Actor, realm, action, target, detail string) error
}

type actorKey struct{}

// NewContextWithActor returns ctx carrying who acts. Every door to the admin
// actions (the web UI, the operator's command line) says who acts this way,
// and the service records the action under that name; the admin API's
// caller is its API key.
func NewContextWithActor(ctx context.Context, by account.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, by)
}

// ActorFromContext returns the actor ctx carries, if any.
func ActorFromContext(ctx context.Context) (account.Actor, bool) {
	by, ok := ctx.Value(actorKey{}).(account.Actor)
	return by, ok
}

// audit records action with the actor of ctx. With no Auditor, or no actor
// (the service's own start-up work, tests), nothing is recorded.
func (s *Service) audit(ctx context.Context, realm, action, target, detail string) error {
	by, ok := ActorFromContext(ctx)
	if s.opts.Auditor == nil || !ok {
		return nil
	}
	return s.opts.Auditor.Record(ctx, by, realm, action, target, detail)
}

// keyDetail describes API key k in the audit list.
func keyDetail(k *APIKey) string { return fmt.Sprintf("%s key %q", k.Kind, k.Name) }

// policyDiff describes what changed between two versions of a realm's
// policy, "" when nothing did.
func policyDiff(a, b *Realm) string {
	var d []string
	add := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			d = append(d, fmt.Sprintf("%s %v → %v", name, x, y))
		}
	}
	add("short code length", a.ShortCodeLength, b.ShortCodeLength)
	add("short code lifetime", a.ShortCodeLifetime, b.ShortCodeLifetime)
	add("long code length", a.LongCodeLength, b.LongCodeLength)
	add("long code lifetime", a.LongCodeLifetime, b.LongCodeLifetime)
	add("test types", strings.Join(a.TestTypes, ","), strings.Join(b.TestTypes, ","))
	add("daily quota", a.DailyQuota, b.DailyQuota)
	add("require date", a.RequireDate, b.RequireDate)
	// The settings only the operator's command line changes.
	add("certificate issuer", a.CertificateIssuer, b.CertificateIssuer)
	add("certificate audience", a.CertificateAudience, b.CertificateAudience)
	add("certificate lifetime", a.CertificateLifetime, b.CertificateLifetime)
	add("app", a.AppID, b.AppID)
	add("maintenance", a.Maintenance, b.Maintenance)
	return strings.Join(d, "; ")
}

// AuditFunc is a function that is an Auditor, for an audit list opened
// after the service.
type AuditFunc func(ctx context.Context, by account.Actor, realm, action, target, detail string) error

// Record calls f.
func (f AuditFunc) Record(ctx context.Context, by account.Actor, realm, action, target, detail string) error {
	return f(ctx, by, realm, action, target, detail)
}
