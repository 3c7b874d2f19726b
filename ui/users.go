package ui

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/verification/account"
)

type usersPage struct {
	Users []*account.User
	// Invited are existing accounts invited to the realm, not yet answered.
	Invited []*account.User
	// Manages holds the IDs of the users whose account (password,
	// disabling) the admin may change, not only their membership.
	Manages map[string]bool
	Self    string
	Error   string
	Notice  string
	Email   string
	Name    string
	Role    string
}

func (h *Handler) usersPage(c echo.Context, st *state, status int, p usersPage) error {
	ctx, by := c.Request().Context(), account.AsUser(st.user)
	users, err := h.acct.RealmUsers(ctx, by, st.realm.Name)
	if err != nil {
		return h.fail(c, st, err)
	}
	if p.Invited, err = h.acct.RealmInvitations(ctx, by, st.realm.Name); err != nil {
		return h.fail(c, st, err)
	}
	p.Manages = map[string]bool{}
	for _, u := range users {
		p.Manages[u.ID] = h.acct.ManagesAccount(by, u)
	}
	p.Users, p.Self = users, st.user.ID
	return h.render(c, status, "users", st, "Users", p)
}

func (h *Handler) users(c echo.Context, st *state) error {
	p := usersPage{Role: string(account.RoleWorker)}
	switch c.QueryParam("done") {
	case "role":
		p.Notice = "The role was changed."
	case "remove":
		p.Notice = "The user was removed from this realm."
	case "disable":
		p.Notice = "The user was disabled and signed out."
	case "enable":
		p.Notice = "The user was enabled."
	case "withdraw":
		p.Notice = "The invitation was withdrawn."
	}
	return h.usersPage(c, st, http.StatusOK, p)
}

type passwordShownPage struct {
	Email    string
	Password string
	Reset    bool
	Existing bool
	Realm    string
	Back     string
}

func (h *Handler) addUser(c echo.Context, st *state) error {
	email, name, role := c.FormValue("email"), c.FormValue("name"), c.FormValue("role")
	u, otp, err := h.acct.AddUser(c.Request().Context(), account.AsUser(st.user), account.NewUser{
		Email: email, Name: name, Realm: st.realm.Name, Role: account.Role(role),
	})
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		return h.usersPage(c, st, http.StatusBadRequest, usersPage{Error: msg, Email: email, Name: name, Role: role})
	}
	if inv, ok := u.Invitations[st.realm.Name]; ok && u.Realms[st.realm.Name] == "" {
		return h.usersPage(c, st, http.StatusOK, usersPage{Role: string(account.RoleWorker), Notice: fmt.Sprintf(
			"%s already has an account, so they were invited as %s. They join realm %s when they accept the invitation at their next sign-in.",
			u.Email, inv.Role, st.realm.Name)})
	}
	return h.render(c, http.StatusOK, "password_shown", st, "User added", passwordShownPage{
		Email: u.Email, Password: otp, Existing: otp == "", Realm: st.realm.Name, Back: Prefix + "/admin/users",
	})
}

type confirmPage struct {
	Heading, Message string
	Action, Button   string
	Danger           bool
	Back             string
	Fields           map[string]string
}

func (h *Handler) realmMember(c echo.Context, st *state) (*account.User, error) {
	u, err := h.acct.User(c.Request().Context(), c.Param("id"))
	if errors.Is(err, account.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if _, ok := u.Realms[st.realm.Name]; !ok {
		return nil, nil
	}
	return u, nil
}

func (h *Handler) confirmUserAction(c echo.Context, st *state) error {
	u, err := h.realmMember(c, st)
	if err != nil {
		return h.fail(c, st, err)
	}
	if u == nil {
		return h.notFound(c, st)
	}
	switch c.Param("action") {
	case "reset", "disable", "enable":
		if !h.acct.ManagesAccount(account.AsUser(st.user), u) {
			return h.usersPage(c, st, http.StatusForbidden, usersPage{Error: account.ErrOtherRealms.Error(), Role: string(account.RoleWorker)})
		}
	}
	p := confirmPage{Action: Prefix + "/admin/users/" + u.ID + "/" + c.Param("action"), Back: Prefix + "/admin/users"}
	switch c.Param("action") {
	case "reset":
		p.Heading, p.Button = "Reset the password of "+u.Email+"?", "Reset password"
		p.Message = "They get a new one-time password, shown on the next page; their current password and two-step sign-in stop working and they are signed out everywhere."
	case "remove":
		p.Heading, p.Button, p.Danger = "Remove "+u.Email+" from realm "+st.realm.Name+"?", "Remove user", true
		p.Message = "They can no longer issue or check codes in this realm. A user left without realms is disabled."
	case "disable":
		p.Heading, p.Button, p.Danger = "Disable "+u.Email+"?", "Disable user", true
		p.Message = "They are signed out at once and cannot sign in until an admin enables them again."
	case "enable":
		p.Heading, p.Button = "Enable "+u.Email+"?", "Enable user"
		p.Message = "They can sign in again with their password."
	default:
		return h.notFound(c, st)
	}
	return h.render(c, http.StatusOK, "confirm", st, "Confirm", p)
}

func (h *Handler) userAction(c echo.Context, st *state) error {
	ctx, by, realm, id := c.Request().Context(), account.AsUser(st.user), st.realm.Name, c.Param("id")
	var err error
	action := c.Param("action")
	switch action {
	case "role":
		_, err = h.acct.SetRole(ctx, by, realm, id, account.Role(c.FormValue("role")))
	case "remove":
		_, err = h.acct.RemoveFromRealm(ctx, by, realm, id)
	case "disable", "enable":
		_, err = h.acct.SetDisabled(ctx, by, realm, id, action == "disable")
	case "reset":
		u, otp, err := h.acct.ResetPassword(ctx, by, realm, id)
		if err == nil {
			return h.render(c, http.StatusOK, "password_shown", st, "Password reset", passwordShownPage{
				Email: u.Email, Password: otp, Reset: true, Realm: realm, Back: Prefix + "/admin/users",
			})
		}
		return h.userActionFailed(c, st, err)
	default:
		return h.notFound(c, st)
	}
	if err != nil {
		return h.userActionFailed(c, st, err)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/admin/users?done="+action)
}

func (h *Handler) withdrawInvitation(c echo.Context, st *state) error {
	if _, err := h.acct.WithdrawInvitation(c.Request().Context(), account.AsUser(st.user), st.realm.Name, c.Param("id")); err != nil {
		return h.userActionFailed(c, st, err)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/admin/users?done=withdraw")
}

func (h *Handler) userActionFailed(c echo.Context, st *state, err error) error {
	msg := userMessage(err)
	if msg == "" {
		return h.fail(c, st, err)
	}
	if errors.Is(err, account.ErrForbidden) {
		return h.forbidden(c, st)
	}
	status := http.StatusBadRequest
	if errors.Is(err, account.ErrOtherRealms) {
		status = http.StatusForbidden
	}
	return h.usersPage(c, st, status, usersPage{Error: msg, Role: string(account.RoleWorker)})
}
