package ui

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Time zones. Symptom and test dates decide which of a person's keys are
// marked infectious, so they must be the days of the health worker's
// calendar. The user's time zone (an IANA name) is asked for before the
// first page that needs it, filled in from the browser by the script; the
// issue forms are rendered in it and carry its name, and a submitted form
// is checked and issued in the zone it was shown in.

type zonePage struct {
	TimeZone string
	Next     string
	Error    string
}

// zoneForm asks for the user's time zone.
func (h *Handler) zoneForm(c echo.Context, st *state) error {
	return h.render(c, http.StatusOK, "timezone", st, "Your time zone", zonePage{TimeZone: st.user.TimeZone, Next: safeNext(c.QueryParam("next"))})
}

// setTimeZone saves the user's time zone, then goes on to the page that
// asked for it.
func (h *Handler) setTimeZone(c echo.Context, st *state) error {
	p := zonePage{TimeZone: strings.TrimSpace(c.FormValue("timezone")), Next: safeNext(c.FormValue("next"))}
	if _, ok := loadZone(p.TimeZone); !ok {
		p.Error = "Enter a time zone name such as Europe/Berlin or America/New_York."
		if p.TimeZone != "" {
			p.Error = "“" + p.TimeZone + "” is not a time zone name. " + p.Error
		}
		return h.render(c, http.StatusBadRequest, "timezone", st, "Your time zone", p)
	}
	if _, err := h.acct.SetTimeZone(c.Request().Context(), st.user, p.TimeZone); err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		p.Error = msg
		return h.render(c, http.StatusBadRequest, "timezone", st, "Your time zone", p)
	}
	if p.Next != "" {
		return c.Redirect(http.StatusSeeOther, p.Next)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/account?done=zone")
}

// zoneOffset returns the issuer's offset from UTC in minutes at now, in the
// zone the form was shown in (sent: its "zone" field), so that the dates a
// health worker saw are the dates checked and stored; without it, in the
// user's own zone. The page answering the form shows its times in that
// zone too.
func (h *Handler) zoneOffset(st *state, sent string) int {
	if loc, ok := loadZone(sent); ok {
		st.loc = loc
	}
	_, off := h.opts.Now().In(st.loc).Zone()
	return off / 60
}
