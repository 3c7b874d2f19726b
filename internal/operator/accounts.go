package operator

import (
	"context"
	"errors"
	"fmt"

	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// UserRequest names a web UI account (Email), or the accounts of a realm.
type UserRequest struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	Realm string `json:"realm,omitempty"`
	Role  string `json:"role,omitempty"`
	// Disable is set by user.disable, cleared by user.enable.
	Disable bool `json:"disable,omitempty"`
}

// Validate accepts every request: the account service checks the address.
func (UserRequest) Validate() error { return nil }

// UserAddRequest is a new account, or a new role of an existing one: a
// system admin, or a worker or admin of Realm.
type UserAddRequest UserRequest

// Validate requires a known role, and a realm for the realm roles.
func (r UserAddRequest) Validate() error {
	switch r.Role {
	case "system":
	case string(account.RoleWorker), string(account.RoleAdmin):
		if r.Realm == "" {
			return Error("--realm is required for the worker and admin roles")
		}
	default:
		return Error("--role: want worker, admin or system")
	}
	return nil
}

// UserInfo is an account as operator commands show it: never a hash or
// secret.
type UserInfo struct {
	Email      string            `json:"email"`
	Name       string            `json:"name,omitempty"`
	Realms     map[string]string `json:"realms,omitempty"`
	System     bool              `json:"system,omitempty"`
	Disabled   bool              `json:"disabled,omitempty"`
	MustChange bool              `json:"mustChangePassword,omitempty"`
	TOTP       bool              `json:"totp,omitempty"`
	// Invited are the realms that invited the account, with the role
	// offered, until the person answers.
	Invited map[string]string `json:"invited,omitempty"`
	// Password is a one-time password, set only by user.add (for a new
	// user) and user.reset-password.
	Password string `json:"password,omitempty"`
}

func newUserInfo(u *account.User) UserInfo {
	info := UserInfo{Email: u.Email, Name: u.Name, System: u.System, Disabled: u.Disabled, MustChange: u.MustChangePassword, TOTP: u.HasTOTP()}
	if len(u.Realms) > 0 {
		info.Realms = map[string]string{}
		for r, role := range u.Realms {
			info.Realms[r] = string(role)
		}
	}
	for r, inv := range u.Invitations {
		if info.Invited == nil {
			info.Invited = map[string]string{}
		}
		info.Invited[r] = string(inv.Role)
	}
	return info
}

// accountError turns the account service's errors the operator can fix
// into Errors.
func accountError(err error) error {
	var ie *account.InputError
	if errors.As(err, &ie) || errors.Is(err, account.ErrNotFound) || errors.Is(err, account.ErrForbidden) {
		return Error(err.Error())
	}
	return err
}

// AddUser adds an account, or gives an existing one the role; a new
// account's answer holds its one-time password.
func (s *Services) AddUser(ctx context.Context, req UserAddRequest) (UserInfo, error) {
	nu := account.NewUser{Email: req.Email, Name: req.Name}
	if req.Role == "system" {
		nu.System = true
	} else {
		if _, err := s.Verification.Realm(ctx, req.Realm); err != nil {
			if errors.Is(err, verification.ErrNotFound) {
				return UserInfo{}, Error(fmt.Sprintf("there is no realm %s", req.Realm))
			}
			return UserInfo{}, err
		}
		nu.Realm, nu.Role = req.Realm, account.Role(req.Role)
	}
	u, otp, err := s.Accounts.AddUser(ctx, account.Operator(), nu)
	if err != nil {
		return UserInfo{}, accountError(err)
	}
	info := newUserInfo(u)
	info.Password = otp
	return info, nil
}

// ListUsers returns every account, or those of req.Realm.
func (s *Services) ListUsers(ctx context.Context, req UserRequest) ([]UserInfo, error) {
	users, err := s.Accounts.AllUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := []UserInfo{}
	for _, u := range users {
		if _, ok := u.Realms[req.Realm]; req.Realm == "" || ok {
			out = append(out, newUserInfo(u))
		}
	}
	return out, nil
}

// ResetPassword gives an account a new one-time password, in the answer.
func (s *Services) ResetPassword(ctx context.Context, req UserRequest) (UserInfo, error) {
	u, otp, err := s.Accounts.ResetPasswordByEmail(ctx, req.Email)
	if err != nil {
		return UserInfo{}, accountError(err)
	}
	info := newUserInfo(u)
	info.Password = otp
	return info, nil
}

// SetDisabled disables (req.Disable) or enables an account.
func (s *Services) SetDisabled(ctx context.Context, req UserRequest) (UserInfo, error) {
	u, err := s.Accounts.SetDisabledByEmail(ctx, req.Email, req.Disable)
	if err != nil {
		return UserInfo{}, accountError(err)
	}
	return newUserInfo(u), nil
}
