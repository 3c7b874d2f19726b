package ui

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/verification/account"
)

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
