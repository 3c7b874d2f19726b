package ui

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// ---- Statistics ----

type statsDay struct {
	Day                      string
	Label                    string
	Issued, Claimed, Expired int64
	Invalid, Certificates    int64
	ClaimRate                float64
	HasRate                  bool
}

type statsPage struct {
	Days       int
	Choices    []int
	Rows       []statsDay
	Total      statsDay
	Counts     *chartSpec
	Rates      *chartSpec
	FirstDay   string
	LastDay    string
	EmptyRange bool
}

func (h *Handler) stats(c echo.Context, st *state) error {
	days := 14
	if n, err := strconv.Atoi(c.QueryParam("days")); err == nil && (n == 7 || n == 28 || n == 90) {
		days = n
	}
	now := h.opts.Now().UTC()
	from := now.AddDate(0, 0, 1-days)
	got, err := h.ver.Stats(c.Request().Context(), st.realm.Name, from, now)
	if err != nil {
		return h.fail(c, st, err)
	}
	byDay := map[string]verification.Stats{}
	for _, d := range got {
		byDay[d.Day] = d.Stats
	}
	p := statsPage{Days: days, Choices: []int{7, 14, 28, 90}, EmptyRange: len(got) == 0}
	counts := &chartSpec{ID: "chart-counts", Title: fmt.Sprintf("Codes per day, last %d UTC days", days),
		Desc: "Bars per day: codes issued, codes claimed (redeemed by the app), and codes that expired unclaimed. The table below has the numbers."}
	rates := &chartSpec{ID: "chart-rate", Title: fmt.Sprintf("Claim rate per day, last %d UTC days", days), Max: 1,
		Desc:   "Codes claimed that day divided by codes issued that day. The table below has the numbers.",
		Format: func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }}
	issued := series{Name: "Issued", Class: "s-issued"}
	claimed := series{Name: "Claimed", Class: "s-claimed"}
	expired := series{Name: "Expired unclaimed", Class: "s-expired"}
	rate := series{Name: "Claim rate", Class: "s-rate"}
	for i := range days {
		t := from.AddDate(0, 0, i)
		s := byDay[verification.UTCDay(t)]
		d := statsDay{Day: verification.UTCDay(t), Label: t.Format("2 Jan"), Issued: s.CodesIssued, Claimed: s.CodesClaimed,
			Expired: s.CodesExpired, Invalid: s.InvalidAttempts, Certificates: s.CertificatesIssued}
		if d.Issued > 0 {
			d.ClaimRate, d.HasRate = float64(d.Claimed)/float64(d.Issued), true
		}
		p.Rows = append(p.Rows, d)
		p.Total.Issued += d.Issued
		p.Total.Claimed += d.Claimed
		p.Total.Expired += d.Expired
		p.Total.Invalid += d.Invalid
		p.Total.Certificates += d.Certificates
		counts.Labels = append(counts.Labels, d.Label)
		rates.Labels = append(rates.Labels, d.Label)
		issued.Values = append(issued.Values, float64(d.Issued))
		claimed.Values = append(claimed.Values, float64(d.Claimed))
		expired.Values = append(expired.Values, float64(d.Expired))
		rate.Values = append(rate.Values, d.ClaimRate)
	}
	if p.Total.Issued > 0 {
		p.Total.ClaimRate, p.Total.HasRate = float64(p.Total.Claimed)/float64(p.Total.Issued), true
	}
	counts.Series = []series{issued, claimed, expired}
	rates.Series = []series{rate}
	p.Counts, p.Rates = counts, rates
	p.FirstDay, p.LastDay = p.Rows[0].Day, p.Rows[len(p.Rows)-1].Day
	slices.Reverse(p.Rows) // the table shows the newest day first
	return h.render(c, http.StatusOK, "stats", st, "Statistics", p)
}

// ---- Users ----

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

// ---- API keys ----

type apiKeysPage struct {
	Keys  []*verification.APIKey
	Error string
	Name  string
	Kind  string
	// Created is a key just created: its secret is shown this once.
	Created *verification.APIKey
	Secret  string
	Notice  string
}

func (h *Handler) apiKeysPage(c echo.Context, st *state, status int, p apiKeysPage) error {
	keys, err := h.ver.APIKeys(c.Request().Context(), st.realm.Name)
	if err != nil {
		return h.fail(c, st, err)
	}
	slices.SortFunc(keys, func(a, b *verification.APIKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	p.Keys = keys
	return h.render(c, status, "apikeys", st, "API keys", p)
}

func (h *Handler) apiKeys(c echo.Context, st *state) error {
	p := apiKeysPage{Kind: string(verification.DeviceKey)}
	if c.QueryParam("done") == "revoke" {
		p.Notice = "The key was revoked: requests with it are refused from now on."
	}
	return h.apiKeysPage(c, st, http.StatusOK, p)
}

func (h *Handler) addAPIKey(c echo.Context, st *state) error {
	name, kindText := strings.TrimSpace(c.FormValue("name")), c.FormValue("kind")
	kind, err := verification.ParseAPIKeyKind(kindText)
	if err != nil || name == "" || len(name) > 100 {
		msg := "Give the key a name of at most 100 characters, such as “Android app”."
		if err != nil {
			msg = "Choose the kind of key."
		}
		return h.apiKeysPage(c, st, http.StatusBadRequest, apiKeysPage{Error: msg, Name: name, Kind: kindText})
	}
	secret, k, err := h.ver.CreateAPIKey(c.Request().Context(), st.realm.Name, kind, name)
	if err != nil {
		return h.fail(c, st, err)
	}
	if err := h.acct.Record(c.Request().Context(), account.AsUser(st.user), st.realm.Name, account.ActionAPIKeyAdd, k.ID, fmt.Sprintf("%s key %q", k.Kind, k.Name)); err != nil {
		return h.fail(c, st, err)
	}
	return h.apiKeysPage(c, st, http.StatusOK, apiKeysPage{Created: k, Secret: secret, Kind: string(verification.DeviceKey)})
}

func (h *Handler) findKey(c echo.Context, st *state) (*verification.APIKey, error) {
	keys, err := h.ver.APIKeys(c.Request().Context(), st.realm.Name)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.ID == c.Param("id") {
			return k, nil
		}
	}
	return nil, nil
}

func (h *Handler) confirmRevoke(c echo.Context, st *state) error {
	k, err := h.findKey(c, st)
	if err != nil {
		return h.fail(c, st, err)
	}
	if k == nil || k.Revoked() {
		return h.notFound(c, st)
	}
	return h.render(c, http.StatusOK, "confirm", st, "Confirm", confirmPage{
		Heading: fmt.Sprintf("Revoke the %s key %q?", k.Kind, k.Name), Button: "Revoke key", Danger: true,
		Message: "Every request with this key is refused at once. This cannot be undone: a revoked key never works again.",
		Action:  Prefix + "/admin/apikeys/" + k.ID + "/revoke", Back: Prefix + "/admin/apikeys",
	})
}

func (h *Handler) revokeAPIKey(c echo.Context, st *state) error {
	k, err := h.ver.RevokeAPIKey(c.Request().Context(), st.realm.Name, c.Param("id"))
	if errors.Is(err, verification.ErrNotFound) {
		return h.notFound(c, st)
	}
	if err != nil {
		return h.fail(c, st, err)
	}
	if err := h.acct.Record(c.Request().Context(), account.AsUser(st.user), st.realm.Name, account.ActionAPIKeyRevoke, k.ID, fmt.Sprintf("%s key %q", k.Kind, k.Name)); err != nil {
		return h.fail(c, st, err)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/admin/apikeys?done=revoke")
}

// ---- Code policy ----

type policyPage struct {
	Realm  *verification.Realm
	All    []string
	Errors []string
	Notice string
	Limits policyLimits
}

type policyLimits struct {
	MinShort, MaxShort, MinLong, MaxLong int
	MaxShortMinutes, MaxLongHours        int
}

// limits are the policy limits the form states.
func limits() policyLimits {
	return policyLimits{
		MinShort: verification.MinShortCodeLength, MaxShort: verification.MaxShortCodeLength,
		MinLong: verification.MinLongCodeLength, MaxLong: verification.MaxLongCodeLength,
		MaxShortMinutes: int(verification.MaxShortCodeLifetime / time.Minute), MaxLongHours: int(verification.MaxLongCodeLifetime / time.Hour),
	}
}

// allTestTypes are the test types a realm may issue, in the form's order.
func allTestTypes() []string {
	return []string{api.TestTypeConfirmed, api.TestTypeLikely, api.TestTypeNegative, api.TestTypeUserReport}
}

func (h *Handler) policyForm(c echo.Context, st *state) error {
	p := policyPage{Realm: st.realm, All: allTestTypes(), Limits: limits()}
	if c.QueryParam("done") == "1" {
		p.Notice = "The code policy was saved. It applies to codes issued from now on."
	}
	return h.render(c, http.StatusOK, "policy", st, "Code policy", p)
}

func (h *Handler) policy(c echo.Context, st *state) error {
	next := *st.realm
	var errs []string
	num := func(field, label string) int {
		n, err := strconv.Atoi(strings.TrimSpace(c.FormValue(field)))
		if err != nil {
			errs = append(errs, label+" must be a whole number.")
		}
		return n
	}
	next.ShortCodeLength = num("shortLength", "The short code length")
	next.ShortCodeLifetime = time.Duration(num("shortMinutes", "The short code lifetime")) * time.Minute
	next.LongCodeLength = num("longLength", "The link code length")
	next.LongCodeLifetime = time.Duration(num("longHours", "The link lifetime")) * time.Hour
	next.DailyQuota = num("quota", "The daily quota")
	next.RequireDate = c.FormValue("requireDate") == "on"
	form, err := c.FormParams()
	if err != nil {
		return h.fail(c, st, err)
	}
	next.TestTypes = nil
	for _, t := range allTestTypes() {
		if slices.Contains(form["testTypes"], t) {
			next.TestTypes = append(next.TestTypes, t)
		}
	}
	if len(errs) == 0 {
		if err := next.Validate(); err != nil {
			for _, line := range strings.Split(strings.TrimPrefix(err.Error(), "realm "+next.Name+": "), "\n") {
				errs = append(errs, sentence(line))
			}
		}
	}
	if len(errs) > 0 {
		return h.render(c, http.StatusBadRequest, "policy", st, "Code policy", policyPage{Realm: &next, All: allTestTypes(), Errors: errs, Limits: limits()})
	}
	old := st.realm
	r, err := h.ver.UpdateRealm(c.Request().Context(), old.Name, func(r *verification.Realm) error {
		r.ShortCodeLength, r.ShortCodeLifetime = next.ShortCodeLength, next.ShortCodeLifetime
		r.LongCodeLength, r.LongCodeLifetime = next.LongCodeLength, next.LongCodeLifetime
		r.DailyQuota, r.RequireDate, r.TestTypes = next.DailyQuota, next.RequireDate, next.TestTypes
		return nil
	})
	if err != nil {
		return h.fail(c, st, err)
	}
	if h.opts.RealmChanged != nil {
		if err := h.opts.RealmChanged(c.Request().Context(), r); err != nil {
			return h.fail(c, st, err)
		}
	}
	if d := policyDiff(old, r); d != "" {
		if err := h.acct.Record(c.Request().Context(), account.AsUser(st.user), r.Name, account.ActionRealmPolicy, r.Name, d); err != nil {
			return h.fail(c, st, err)
		}
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/admin/policy?done=1")
}

// policyDiff describes what changed between two versions of a realm's policy.
func policyDiff(a, b *verification.Realm) string {
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
	return strings.Join(d, "; ")
}

// ---- Audit list ----

type auditPage struct {
	Entries []*account.AuditEntry
	Next    string
	Realm   string
	System  bool
}

const auditPageSize = 50

func (h *Handler) audit(c echo.Context, st *state) error {
	realm := st.realm.Name
	system := c.QueryParam("list") == "system" && st.user.System
	if system {
		realm = ""
	}
	es, err := h.acct.Audit(c.Request().Context(), account.AsUser(st.user), realm, c.QueryParam("before"), auditPageSize+1)
	if err != nil {
		if errors.Is(err, account.ErrForbidden) {
			return h.forbidden(c, st)
		}
		return h.fail(c, st, err)
	}
	p := auditPage{Entries: es, Realm: st.realm.Name, System: system}
	if len(es) > auditPageSize {
		p.Entries, p.Next = es[:auditPageSize], es[auditPageSize-1].ID
	}
	return h.render(c, http.StatusOK, "audit", st, "Audit list", p)
}

// ---- Realms (system admins) ----

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
	if err := h.acct.Record(c.Request().Context(), account.AsUser(st.user), "", account.ActionRealmAdd, created.Name, "region "+created.Region); err != nil {
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
