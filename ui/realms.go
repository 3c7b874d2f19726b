package ui

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

type realmsPage struct {
	Realms     []*verification.Realm
	Error      string
	Name       string
	Region     string
	AdminError string
	AdminEmail string
	Admins     []*account.User
	Notice     string
}

func (h *Handler) realmsPage(c echo.Context, st *state, status int, p realmsPage) error {
	rs, err := h.ver.Realms(c.Request().Context())
	if err != nil {
		return h.fail(c, st, err)
	}
	admins, err := h.acct.SystemAdmins(c.Request().Context(), account.AsUser(st.user))
	if err != nil {
		return h.fail(c, st, err)
	}
	p.Realms, p.Admins = rs, admins
	return h.render(c, status, "realms", st, "Realms", p)
}

func (h *Handler) realms(c echo.Context, st *state) error {
	p := realmsPage{}
	if n := c.QueryParam("added"); n != "" {
		p.Notice = "Realm " + n + " was created. Switch to it with the realm menu to add its users and API keys."
	}
	return h.realmsPage(c, st, http.StatusOK, p)
}

func (h *Handler) addRealm(c echo.Context, st *state) error {
	name, region := strings.TrimSpace(c.FormValue("name")), strings.TrimSpace(c.FormValue("region"))
	r := verification.Realm{Name: name, Region: region, DailyQuota: verification.DefaultDailyQuota}
	if check := r.WithDefaults(); check.Validate() != nil {
		err := check.Validate()
		return h.realmsPage(c, st, http.StatusBadRequest, realmsPage{Error: sentence(strings.ReplaceAll(err.Error(), "\n", "; ")), Name: name, Region: region})
	}
	add := h.opts.AddRealm
	if add == nil {
		add = h.ver.CreateRealm
	}
	created, err := add(c.Request().Context(), r)
	if err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return h.realmsPage(c, st, http.StatusBadRequest, realmsPage{Error: "A realm named " + name + " already exists.", Name: name, Region: region})
		}
		return h.fail(c, st, err)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/system/realms?added="+created.Name)
}

func (h *Handler) addSystemAdmin(c echo.Context, st *state) error {
	email := c.FormValue("email")
	u, otp, err := h.acct.AddUser(c.Request().Context(), account.AsUser(st.user), account.NewUser{Email: email, Name: c.FormValue("name"), System: true})
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		return h.realmsPage(c, st, http.StatusBadRequest, realmsPage{AdminError: msg, AdminEmail: email})
	}
	return h.render(c, http.StatusOK, "password_shown", st, "System admin added", passwordShownPage{
		Email: u.Email, Password: otp, Existing: otp == "", Back: Prefix + "/system/realms",
	})
}
