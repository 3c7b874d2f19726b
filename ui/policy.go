package ui

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/verification"
)

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
	r, err := h.ver.UpdateRealm(c.Request().Context(), st.realm.Name, func(r *verification.Realm) error {
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
	return c.Redirect(http.StatusSeeOther, Prefix+"/admin/policy?done=1")
}
