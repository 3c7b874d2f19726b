package account

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AuditEntry is one admin action on the internal audit list: who changed
// what, when. It names staff, so it is shown to admins only and never goes
// to the public transparency log; it never holds a code, password or
// secret.
type AuditEntry struct {
	// ID orders entries: 16 hex digits of Unix nanoseconds, then 8 random
	// hex digits.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Realm is the realm acted on; "" for system actions.
	Realm string `json:"realm,omitempty"`
	// Actor is the email of the user who acted, or "operator" for the
	// command line.
	Actor string `json:"actor"`
	// Action is a dotted name, e.g. "user.add", "apikey.revoke".
	Action string `json:"action"`
	// Target is what was acted on: a user's email, an API key ID, a code's
	// tracking ID (UUID), a realm.
	Target string `json:"target,omitempty"`
	// Detail says more, e.g. "role worker → admin".
	Detail string `json:"detail,omitempty"`
	// Refused marks an attempt the service refused: the action did not
	// happen, and the realms of its target see who tried.
	Refused bool `json:"refused,omitempty"`
}

// Audit actions.
const (
	ActionUserAdd        = "user.add"
	ActionUserRole       = "user.role"
	ActionUserRemove     = "user.remove"
	ActionUserDisable    = "user.disable"
	ActionUserEnable     = "user.enable"
	ActionInvite         = "user.invite"
	ActionInviteAccept   = "user.invite-accept"
	ActionInviteDecline  = "user.invite-decline"
	ActionInviteWithdraw = "user.invite-withdraw"
	ActionPasswordReset  = "user.password-reset"
	ActionTOTPEnable     = "user.totp-enable"
	ActionTOTPDisable    = "user.totp-disable"
	ActionAPIKeyAdd      = "apikey.add"
	ActionAPIKeyRevoke   = "apikey.revoke"
	ActionRealmAdd       = "realm.add"
	ActionRealmPolicy    = "realm.policy"
	ActionCodeExpire     = "code.expire"
	ActionBulkIssue      = "code.bulk-issue"
)

// Record appends an audit entry for an action by the actor in realm ("" for
// system actions). Target and detail must hold no code, password or secret.
func (s *Service) Record(ctx context.Context, by Actor, realm, action, target, detail string) error {
	return s.record(ctx, by, realm, action, target, detail, false)
}

func (s *Service) record(ctx context.Context, by Actor, realm, action, target, detail string, refused bool) error {
	now := s.now().UTC()
	r, err := s.random(4)
	if err != nil {
		return err
	}
	e := &AuditEntry{ID: AuditIDPrefix(now) + hex.EncodeToString(r), Time: now, Realm: realm, Actor: by.Name,
		Action: action, Target: target, Detail: detail, Refused: refused}
	if err := s.store.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// recordOn records an action on the person u (as they were before it),
// done in realm ("" for a system admin's or the operator's action without
// one): in realm's list, in the list of every realm u belongs to, and in
// the system list for a system admin — so that each realm's admins see
// what is done to their people from elsewhere, refused attempts included.
func (s *Service) recordOn(ctx context.Context, by Actor, realm, action string, u *User, detail string, refused bool) error {
	lists := append([]string{realm}, u.RealmNames()...)
	if u.System {
		lists = append(lists, "")
	}
	slices.Sort(lists)
	var errs []error
	for _, list := range slices.Compact(lists) {
		d := detail
		if list != realm {
			where := "in realm " + realm
			if realm == "" {
				where = "system action"
			}
			d = strings.Join(slices.DeleteFunc([]string{where, detail}, func(x string) bool { return x == "" }), "; ")
		}
		errs = append(errs, s.record(ctx, by, list, action, u.Email, d, refused))
	}
	return errors.Join(errs...)
}

// AuditIDPrefix is the part of an audit entry ID that orders it: 16 hex
// digits of t in Unix nanoseconds. IDs of entries older than t sort before it.
func AuditIDPrefix(t time.Time) string { return fmt.Sprintf("%016x", uint64(t.UnixNano())) }

// Audit returns up to limit audit entries of realm ("" for system actions),
// newest first, before the entry ID before ("" for the newest). Realm
// admins read their realm's list; system admins every list.
func (s *Service) Audit(ctx context.Context, by Actor, realm, before string, limit int) ([]*AuditEntry, error) {
	if realm == "" && !by.system() || realm != "" && !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	es, err := s.store.Audit(ctx, realm, before, limit)
	if err != nil {
		return nil, fmt.Errorf("audit of %q: %w", realm, err)
	}
	return es, nil
}
