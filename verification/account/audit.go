package account

import "time"

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
