package account

import (
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// Role is what a user may do in one realm.
type Role string

// Roles in a realm.
const (
	// RoleWorker issues codes, bulk-issues, and checks or expires codes.
	RoleWorker Role = "worker"
	// RoleAdmin also manages the realm's users, API keys and code policy,
	// and reads its statistics and audit list.
	RoleAdmin Role = "admin"
)

// ParseRole parses "worker" or "admin".
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.TrimSpace(s)); r {
	case RoleWorker, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want worker or admin", s)
}

// Covers reports whether r includes the rights of need.
func (r Role) Covers(need Role) bool {
	switch need {
	case RoleWorker:
		return r == RoleWorker || r == RoleAdmin
	case RoleAdmin:
		return r == RoleAdmin
	}
	return false
}

// String returns the role as people read it.
func (r Role) String() string {
	switch r {
	case RoleWorker:
		return "health worker"
	case RoleAdmin:
		return "realm admin"
	}
	return string(r)
}

// User is a person who signs in to the UI.
type User struct {
	// ID is random and never changes; Email may.
	ID string `json:"id"`
	// Email is the sign-in name, stored in lower case.
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	// Realms maps each realm the user belongs to to their role in it.
	Realms map[string]Role `json:"realms,omitempty"`
	// System marks a system admin: manages realms, admin in every realm.
	System bool `json:"system,omitempty"`
	// Invitations are memberships that realms' admins offered this
	// existing account; each becomes one only when the person accepts it
	// (AnswerInvitation), so that no realm admin can pull someone else's
	// account into their realm.
	Invitations map[string]Invitation `json:"invitations,omitempty"`

	// PasswordHash is the argon2id hash in PHC string format.
	PasswordHash string `json:"passwordHash"`
	// MustChangePassword is set for a one-time password: the user must
	// choose a password before doing anything else.
	MustChangePassword bool      `json:"mustChangePassword,omitempty"`
	PasswordChangedAt  time.Time `json:"passwordChangedAt"`

	// TOTPSecret is the sealed TOTP secret; empty when there is no second
	// factor. TOTPLastStep is the last time step accepted, so that a code
	// is never accepted twice.
	TOTPSecret   []byte `json:"totpSecret,omitempty"`
	TOTPLastStep int64  `json:"totpLastStep,omitempty"`

	// TimeZone is the IANA zone in which the user enters dates, when the
	// browser does not say (no JavaScript); UTC when empty.
	TimeZone string `json:"timeZone,omitempty"`
	// Disabled users cannot sign in.
	Disabled  bool      `json:"disabled,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Invitation is a realm's offer of a role to an existing account.
type Invitation struct {
	Role Role `json:"role"`
	// By is the email of the admin who invited.
	By string `json:"by"`
}

// HasTOTP reports whether the user has a second factor.
func (u *User) HasTOTP() bool { return len(u.TOTPSecret) > 0 }

// RoleIn returns the user's role in realm: RoleAdmin for a system admin, ""
// when the user does not belong to it.
func (u *User) RoleIn(realm string) Role {
	if u.System {
		return RoleAdmin
	}
	return u.Realms[realm]
}

// Can reports whether the user has at least role need in realm.
func (u *User) Can(realm string, need Role) bool {
	return realm != "" && !u.Disabled && u.RoleIn(realm).Covers(need)
}

// InvitationRealms returns the realms that invited the user, sorted.
func (u *User) InvitationRealms() []string { return slices.Sorted(maps.Keys(u.Invitations)) }

// RealmNames returns the realms the user belongs to, sorted.
func (u *User) RealmNames() []string { return slices.Sorted(maps.Keys(u.Realms)) }

// MaxEmailLength and MaxNameLength bound a user's email and name.
const (
	MaxEmailLength = 254
	MaxNameLength  = 100
)

// NormalizeEmail trims and lower-cases an email address and checks that it
// is a plain address (no display name).
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", errors.New("email is required")
	}
	if len(e) > MaxEmailLength {
		return "", fmt.Errorf("email is longer than %d characters", MaxEmailLength)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") && !strings.HasSuffix(e, "@localhost") {
		return "", fmt.Errorf("%q is not an email address", e)
	}
	return e, nil
}

// Validate checks the user's fields.
func (u *User) Validate() error {
	var errs []error
	if u.ID == "" {
		errs = append(errs, errors.New("id is required"))
	}
	if e, err := NormalizeEmail(u.Email); err != nil {
		errs = append(errs, err)
	} else if e != u.Email {
		errs = append(errs, fmt.Errorf("email %q is not normalized", u.Email))
	}
	if len(u.Name) > MaxNameLength {
		errs = append(errs, fmt.Errorf("name is longer than %d characters", MaxNameLength))
	}
	for realm, role := range u.Realms {
		if realm == "" {
			errs = append(errs, errors.New("empty realm name"))
		}
		if _, err := ParseRole(string(role)); err != nil {
			errs = append(errs, fmt.Errorf("realm %s: %w", realm, err))
		}
	}
	for realm, inv := range u.Invitations {
		if _, err := ParseRole(string(inv.Role)); err != nil || realm == "" {
			errs = append(errs, fmt.Errorf("invitation of realm %q: role %q", realm, inv.Role))
		}
	}
	if len(u.Realms) == 0 && !u.System && !u.Disabled {
		errs = append(errs, errors.New("an active user needs a realm or the system admin role"))
	}
	if u.PasswordHash == "" {
		errs = append(errs, errors.New("password hash is required"))
	}
	if u.TimeZone != "" {
		if _, err := time.LoadLocation(u.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("time zone %q: %w", u.TimeZone, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("user %s: %w", u.Email, err)
	}
	return nil
}

// Clone returns a deep copy of u.
func (u *User) Clone() *User {
	c := *u
	c.Realms = maps.Clone(u.Realms)
	c.Invitations = maps.Clone(u.Invitations)
	c.TOTPSecret = slices.Clone(u.TOTPSecret)
	return &c
}
