package account

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NewUser is a user to create or add to a realm.
type NewUser struct {
	Email string
	Name  string
	// Realm and Role give a membership; System makes a system admin.
	Realm  string
	Role   Role
	System bool
}

// AddUser adds a user to a realm (or, with System, makes a system admin).
// A new email creates the user with a one-time password, returned here and
// nowhere else. An existing account keeps its password (the returned
// one-time password is ""): a system admin or the operator adds the
// membership at once; a realm admin only invites it (User.Invitations),
// and the person accepts or declines at their next sign-in, so that no
// realm admin can pull another realm's account into their own. An account
// disabled without realms is nobody's: it is enabled again with a new
// one-time password and the membership. Realm admins may add workers and
// admins to their realm; only system admins and the operator may make
// system admins. The action is recorded in the realm's audit list and in
// that of every realm the person belongs to.
func (s *Service) AddUser(ctx context.Context, by Actor, nu NewUser) (*User, string, error) {
	email, err := NormalizeEmail(nu.Email)
	if err != nil {
		return nil, "", &InputError{err.Error()}
	}
	name := strings.TrimSpace(nu.Name)
	if len(name) > MaxNameLength {
		return nil, "", inputf("The name is longer than %d characters.", MaxNameLength)
	}
	if nu.System {
		if !by.system() {
			return nil, "", ErrForbidden
		}
	} else {
		if nu.Realm == "" {
			return nil, "", inputf("A realm is required.")
		}
		if _, err := ParseRole(string(nu.Role)); err != nil {
			return nil, "", &InputError{err.Error()}
		}
		if !by.can(nu.Realm, RoleAdmin) {
			return nil, "", ErrForbidden
		}
	}
	otp, hash, err := s.newOneTimePassword(ctx)
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	detail := "role " + string(nu.Role)
	realm := nu.Realm
	if nu.System {
		detail, realm = "system admin", ""
	}
	existing, err := s.store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		id, err := s.random(12)
		if err != nil {
			return nil, "", err
		}
		u := &User{ID: "u" + hex.EncodeToString(id), Email: email, Name: name, System: nu.System,
			PasswordHash: hash, MustChangePassword: true, PasswordChangedAt: now, CreatedAt: now}
		if !nu.System {
			u.Realms = map[string]Role{nu.Realm: nu.Role}
		}
		if err := u.Validate(); err != nil {
			return nil, "", &InputError{err.Error()}
		}
		if err := s.store.CreateUser(ctx, u); err != nil {
			if errors.Is(err, ErrExists) {
				return nil, "", inputf("A user with the email %s already exists.", email)
			}
			return nil, "", fmt.Errorf("add user: %w", err)
		}
		return u, otp, s.recordOn(ctx, by, realm, ActionUserAdd, u, detail, false)
	case err != nil:
		return nil, "", fmt.Errorf("add user: %w", err)
	}
	revived := existing.Disabled && len(existing.Realms) == 0 && !existing.System
	invite := !nu.System && !revived && !by.system()
	if !revived {
		otp = ""
	}
	action := ActionUserAdd
	if invite {
		action = ActionInvite
	}
	u, err := s.store.UpdateUser(ctx, existing.ID, func(u *User) error {
		switch {
		case nu.System && u.System:
			return inputf("%s is already a system admin.", email)
		case nu.System:
			u.System = true
		case u.Realms[nu.Realm] != "":
			return inputf("%s already belongs to realm %s.", email, nu.Realm)
		case invite:
			if u.Invitations == nil {
				u.Invitations = map[string]Invitation{}
			}
			u.Invitations[nu.Realm] = Invitation{Role: nu.Role, By: by.Name}
		default:
			if u.Realms == nil {
				u.Realms = map[string]Role{}
			}
			u.Realms[nu.Realm] = nu.Role
			delete(u.Invitations, nu.Realm)
		}
		if revived {
			// Whoever sees the one-time password could accept what was
			// offered to the account's former holder.
			u.Disabled, u.Invitations = false, nil
			u.PasswordHash, u.MustChangePassword, u.PasswordChangedAt = hash, true, now
			u.TOTPSecret, u.TOTPLastStep = nil, 0
		}
		// An invitation changes nothing of the account, not even its name.
		if name != "" && u.Name == "" && !invite {
			u.Name = name
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if invite {
		detail = "invited as " + string(nu.Role) + "; a member once they accept"
	}
	return u, otp, s.recordOn(ctx, by, realm, action, existing, detail, false)
}

// User returns the user with the ID (ErrNotFound).
func (s *Service) User(ctx context.Context, id string) (*User, error) {
	u, err := s.store.User(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// UserByEmail returns the user with the email (ErrNotFound).
func (s *Service) UserByEmail(ctx context.Context, email string) (*User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, &InputError{err.Error()}
	}
	u, err := s.store.UserByEmail(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", e, err)
	}
	return u, nil
}

// HasUsers reports whether any user exists.
func (s *Service) HasUsers(ctx context.Context) (bool, error) {
	us, err := s.store.Users(ctx)
	if err != nil {
		return false, fmt.Errorf("users: %w", err)
	}
	return len(us) > 0, nil
}

// RealmUsers returns the members of realm, by email; the actor must be its
// admin.
func (s *Service) RealmUsers(ctx context.Context, by Actor, realm string) ([]*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	return s.usersWhere(ctx, func(u *User) bool { _, ok := u.Realms[realm]; return ok })
}

// RealmInvitations returns the accounts that realm invited and that have
// not answered yet, by email; the actor must be the realm's admin.
func (s *Service) RealmInvitations(ctx context.Context, by Actor, realm string) ([]*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	return s.usersWhere(ctx, func(u *User) bool { _, ok := u.Invitations[realm]; return ok })
}

// SystemAdmins returns the system admins; the actor must be one.
func (s *Service) SystemAdmins(ctx context.Context, by Actor) ([]*User, error) {
	if !by.system() {
		return nil, ErrForbidden
	}
	return s.usersWhere(ctx, func(u *User) bool { return u.System })
}

// usersWhere returns the users for which keep is true, by email.
func (s *Service) usersWhere(ctx context.Context, keep func(*User) bool) ([]*User, error) {
	all, err := s.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var out []*User
	for _, u := range all {
		if keep(u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// ManagesAccount reports whether by may change u's account itself — its
// password, second factor, whether it is disabled — and not only a
// membership: the operator and system admins may; a realm admin only when
// they are an admin of every realm u belongs to and u is no system admin.
func (s *Service) ManagesAccount(by Actor, u *User) bool {
	if by.system() {
		return true
	}
	if u.System || len(u.Realms) == 0 {
		return false
	}
	for r := range u.Realms {
		if !by.can(r, RoleAdmin) {
			return false
		}
	}
	return true
}

// member loads user id and checks that by may manage their membership in
// realm: by is the realm's admin, the user belongs to it, and the user is
// not by (admins do not demote, remove or reset themselves here) nor —
// unless by is one — a system admin. A refusal on another person is
// recorded as an attempt of action, in realm and the person's realms.
func (s *Service) member(ctx context.Context, by Actor, realm, id, action string) (*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	u, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, inputf("There is no such user.")
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	switch {
	case u.ID == by.id():
		return nil, inputf("You cannot change your own account here; ask another admin.")
	case u.Realms[realm] == "":
		return nil, s.refuse(ctx, by, realm, action, u, "not a member of realm "+realm,
			inputf("%s does not belong to realm %s.", u.Email, realm))
	case u.System && !by.system():
		return nil, s.refuse(ctx, by, realm, action, u, "a system admin", ErrForbidden)
	}
	return u, nil
}

// accountOf is member for changes of the account itself: by must also
// manage it (ManagesAccount), else ErrOtherRealms, recorded.
func (s *Service) accountOf(ctx context.Context, by Actor, realm, id, action string) (*User, error) {
	u, err := s.member(ctx, by, realm, id, action)
	if err != nil {
		return nil, err
	}
	if !s.ManagesAccount(by, u) {
		return nil, s.refuse(ctx, by, realm, action, u, "not an admin of every realm of the person", ErrOtherRealms)
	}
	return u, nil
}

// refuse records the refused attempt and returns err.
func (s *Service) refuse(ctx context.Context, by Actor, realm, action string, u *User, why string, err error) error {
	if rerr := s.recordOn(ctx, by, realm, action, u, "refused: "+why, true); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// SetRole changes the user's role in realm: a membership change, which
// the realm's admins may make.
func (s *Service) SetRole(ctx context.Context, by Actor, realm, id string, role Role) (*User, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, &InputError{err.Error()}
	}
	before, err := s.member(ctx, by, realm, id, ActionUserRole)
	if err != nil {
		return nil, err
	}
	old := before.Realms[realm]
	if old == role {
		return before, nil
	}
	u, err := s.store.UpdateUser(ctx, id, func(u *User) error {
		if _, ok := u.Realms[realm]; !ok {
			return inputf("%s does not belong to realm %s.", u.Email, realm)
		}
		u.Realms[realm] = role
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, s.recordOn(ctx, by, realm, ActionUserRole, before, fmt.Sprintf("role %s → %s", old, role), false)
}

// RemoveFromRealm removes the user from realm: a membership change, which
// the realm's admins may make. A user left without realms (and not a
// system admin) is disabled and signed out everywhere.
func (s *Service) RemoveFromRealm(ctx context.Context, by Actor, realm, id string) (*User, error) {
	before, err := s.member(ctx, by, realm, id, ActionUserRemove)
	if err != nil {
		return nil, err
	}
	u, err := s.store.UpdateUser(ctx, id, func(u *User) error {
		delete(u.Realms, realm)
		if len(u.Realms) == 0 && !u.System {
			u.Disabled = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		if _, err := s.store.DeleteUserSessions(ctx, id, ""); err != nil {
			return nil, fmt.Errorf("sign out %s: %w", u.Email, err)
		}
	}
	return u, s.recordOn(ctx, by, realm, ActionUserRemove, before, "", false)
}

// SetDisabled disables (signing them out everywhere) or enables the user:
// a change of the account, so by must manage it (ManagesAccount).
func (s *Service) SetDisabled(ctx context.Context, by Actor, realm, id string, disabled bool) (*User, error) {
	action := ActionUserEnable
	if disabled {
		action = ActionUserDisable
	}
	before, err := s.accountOf(ctx, by, realm, id, action)
	if err != nil {
		return nil, err
	}
	return s.setDisabled(ctx, by, realm, before, disabled)
}

// SetDisabledByEmail disables (signing them out everywhere) or enables any
// user, including system admins: for the operator at the command line.
func (s *Service) SetDisabledByEmail(ctx context.Context, email string, disabled bool) (*User, error) {
	u, err := s.UserByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	return s.setDisabled(ctx, Operator(), "", u, disabled)
}

func (s *Service) setDisabled(ctx context.Context, by Actor, realm string, before *User, disabled bool) (*User, error) {
	u, err := s.store.UpdateUser(ctx, before.ID, func(x *User) error {
		if !disabled && len(x.Realms) == 0 && !x.System {
			return inputf("%s belongs to no realm; add them to one instead.", x.Email)
		}
		x.Disabled = disabled
		return nil
	})
	if err != nil {
		return nil, err
	}
	action := ActionUserEnable
	if disabled {
		action = ActionUserDisable
		if _, err := s.store.DeleteUserSessions(ctx, u.ID, ""); err != nil {
			return nil, fmt.Errorf("sign out %s: %w", u.Email, err)
		}
	}
	return u, s.recordOn(ctx, by, realm, action, before, "", false)
}

// AllUsers returns every user, for the operator.
func (s *Service) AllUsers(ctx context.Context) ([]*User, error) {
	us, err := s.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return us, nil
}

// ResetPassword gives the user a new one-time password (returned here only),
// removes their second factor and pending invitations, and signs them out
// everywhere: for a forgotten password or a lost phone. Whoever sees the
// one-time password can act as the person, so by must manage the account
// (ManagesAccount).
func (s *Service) ResetPassword(ctx context.Context, by Actor, realm, id string) (*User, string, error) {
	before, err := s.accountOf(ctx, by, realm, id, ActionPasswordReset)
	if err != nil {
		return nil, "", err
	}
	return s.resetPassword(ctx, by, realm, before)
}

// ResetPasswordByEmail is ResetPassword for the operator (command line),
// for any user including system admins.
func (s *Service) ResetPasswordByEmail(ctx context.Context, email string) (*User, string, error) {
	u, err := s.UserByEmail(ctx, email)
	if err != nil {
		return nil, "", err
	}
	return s.resetPassword(ctx, Operator(), "", u)
}

func (s *Service) resetPassword(ctx context.Context, by Actor, realm string, before *User) (*User, string, error) {
	otp, hash, err := s.newOneTimePassword(ctx)
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	u, err := s.store.UpdateUser(ctx, before.ID, func(u *User) error {
		u.PasswordHash, u.MustChangePassword, u.PasswordChangedAt = hash, true, now
		u.TOTPSecret, u.TOTPLastStep = nil, 0
		// Invitations were meant for the person, not for whoever holds
		// the one-time password.
		u.Invitations = nil
		u.Disabled = u.Disabled && len(u.Realms) == 0 && !u.System
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("reset password: %w", err)
	}
	if _, err := s.store.DeleteUserSessions(ctx, u.ID, ""); err != nil {
		return nil, "", fmt.Errorf("sign out %s: %w", u.Email, err)
	}
	if err := s.store.ClearLoginFailures(ctx, throttleKey(u.Email)); err != nil {
		return nil, "", fmt.Errorf("reset password: %w", err)
	}
	detail := "second factor removed"
	if len(before.Invitations) > 0 {
		detail += "; invitations of " + strings.Join(before.InvitationRealms(), ", ") + " withdrawn"
	}
	return u, otp, s.recordOn(ctx, by, realm, ActionPasswordReset, before, detail, false)
}

// WithdrawInvitation drops realm's open invitation of user id: the realm's
// admins may, as it is their realm's offer.
func (s *Service) WithdrawInvitation(ctx context.Context, by Actor, realm, id string) (*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	before, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, inputf("There is no such user.")
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	after, err := s.store.UpdateUser(ctx, id, func(x *User) error {
		if _, ok := x.Invitations[realm]; !ok {
			return inputf("%s has no open invitation of realm %s.", x.Email, realm)
		}
		delete(x.Invitations, realm)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return after, s.recordOn(ctx, by, realm, ActionInviteWithdraw, before, "", false)
}

// AnswerInvitation makes u a member of realm with the invited role
// (accept) or drops the invitation; either is recorded in realm and every
// realm u belongs to.
func (s *Service) AnswerInvitation(ctx context.Context, u *User, realm string, accept bool) (*User, error) {
	var inv Invitation
	after, err := s.store.UpdateUser(ctx, u.ID, func(x *User) error {
		var ok bool
		if inv, ok = x.Invitations[realm]; !ok {
			return inputf("There is no invitation of realm %s.", realm)
		}
		delete(x.Invitations, realm)
		if accept {
			if x.Realms == nil {
				x.Realms = map[string]Role{}
			}
			x.Realms[realm] = inv.Role
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	action, detail := ActionInviteDecline, "invited as "+string(inv.Role)+" by "+inv.By
	if accept {
		action, detail = ActionInviteAccept, "role "+string(inv.Role)+", invited by "+inv.By
	}
	return after, s.recordOn(ctx, AsUser(u), realm, action, u, detail, false)
}

// SetTimeZone sets the IANA zone in which the user enters dates.
func (s *Service) SetTimeZone(ctx context.Context, u *User, tz string) (*User, error) {
	tz = strings.TrimSpace(tz)
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			return nil, inputf("%q is not a time zone name such as Europe/Berlin.", tz)
		}
	}
	return s.store.UpdateUser(ctx, u.ID, func(u *User) error { u.TimeZone = tz; return nil })
}

// newOneTimePassword returns a fresh one-time password and its hash, as
// stored for a new account or after a reset.
func (s *Service) newOneTimePassword(ctx context.Context) (otp, hash string, err error) {
	if otp, err = NewOneTimePassword(s.opts.Rand); err != nil {
		return "", "", err
	}
	if hash, err = s.hashPassword(ctx, otp); err != nil {
		return "", "", err
	}
	return otp, hash, nil
}
