package ui

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/verification"
)

// caller is the signed-in user as an issuer of codes: the verification
// service records "user:<id>" as IssuedBy (internal, never public).
func (h *Handler) caller(st *state) *verification.Caller {
	return &verification.Caller{Realm: st.realm, Key: &verification.APIKey{
		ID: "user:" + st.user.ID, Realm: st.realm.Name, Kind: verification.AdminKey, Name: st.user.Email,
	}}
}

// newFormUUID returns a random UUID (version 4) for one issue form: sending
// the form twice (a reload) issues one code, not two.
func newFormUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type issueForm struct {
	UUID                            string
	TestTypes                       []string
	TestType, SymptomDate, TestDate string
	// Zone is the time zone the dates are in, sent back with the form.
	Zone string
	// Today and Oldest bound the dates (YYYY-MM-DD); TodayText is today
	// in words.
	Today, Oldest, TodayText string
	RequireDate              bool
	ShortLife, LongLife      time.Duration
	Error                    string
	FieldErrors              map[string]string
	// Repeated is set when the form was already sent: its code was shown then.
	Repeated string
}

// newIssueForm is the issue form with today, the date bounds and the
// prefilled test date in the issuer's zone at offset tz (zoneOffset): the
// zone its submission is checked in.
func (h *Handler) newIssueForm(st *state, tz int) issueForm {
	today := verification.LocalDay(h.opts.Now(), tz)
	return issueForm{
		UUID: newFormUUID(), TestTypes: st.realm.TestTypes, TestType: st.realm.TestTypes[0], Zone: st.loc.String(),
		TestDate: today.Format(verification.DateLayout), Today: today.Format(verification.DateLayout),
		TodayText:   today.Format("Monday 2 January 2006"),
		Oldest:      today.AddDate(0, 0, -h.opts.MaxDateAgeDays).Format(verification.DateLayout),
		RequireDate: st.realm.RequireDate, ShortLife: st.realm.ShortCodeLifetime, LongLife: st.realm.LongCodeLifetime,
		FieldErrors: map[string]string{},
	}
}

func (h *Handler) issueForm(c echo.Context, st *state) error {
	return h.render(c, http.StatusOK, "issue", st, "Issue a code", h.newIssueForm(st, h.zoneOffset(st, "")))
}

type issuedPage struct {
	Issued                          *verification.Issued
	QR                              *qrSVG
	TestType, SymptomDate, TestDate string
	ShortLife                       time.Duration
	// Now is the server's time, for the countdown.
	Now time.Time
}

func (h *Handler) issue(c echo.Context, st *state) error {
	tz := h.zoneOffset(st, c.FormValue("zone"))
	f := h.newIssueForm(st, tz)
	f.TestType = c.FormValue("testType")
	f.SymptomDate = strings.TrimSpace(c.FormValue("symptomDate"))
	f.TestDate = strings.TrimSpace(c.FormValue("testDate"))
	if u := c.FormValue("uuid"); u != "" {
		f.UUID = u
	}
	now := h.opts.Now()
	// Check the dates here to say which field is wrong.
	for _, d := range []struct{ field, label, value string }{{"symptomDate", "The symptom onset date", f.SymptomDate}, {"testDate", "The test date", f.TestDate}} {
		if d.value == "" {
			continue
		}
		if _, err := verification.ParseDate(d.label, d.value, now, tz, h.opts.MaxDateAgeDays); err != nil {
			f.FieldErrors[d.field] = userMessage(err)
		}
	}
	if len(f.FieldErrors) > 0 {
		f.Error = "Check the dates below."
		return h.render(c, http.StatusBadRequest, "issue", st, "Issue a code", f)
	}
	is, err := h.ver.Issue(c.Request().Context(), h.caller(st), &api.IssueCodeRequest{
		TestType: f.TestType, SymptomDate: f.SymptomDate, TestDate: f.TestDate, TZOffset: float64(tz), UUID: f.UUID,
	})
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		status := verification.Status(verification.ErrorCode(err))
		if verification.ErrorCode(err) == api.ErrUUIDAlreadyExists {
			f.Repeated, f.UUID = f.UUID, newFormUUID()
			msg = ""
		}
		f.Error = msg
		return h.render(c, status, "issue", st, "Issue a code", f)
	}
	qr, err := newQR(is.LongCodeLink, "QR code of the verification link; scanning it opens the exposure notification app")
	if err != nil {
		return h.fail(c, st, err)
	}
	return h.render(c, http.StatusOK, "issued", st, "Code issued", issuedPage{
		Issued: is, QR: qr, TestType: f.TestType, SymptomDate: f.SymptomDate, TestDate: f.TestDate, ShortLife: st.realm.ShortCodeLifetime, Now: now,
	})
}

// ---- Check and expire ----

type codePage struct {
	UUID     string
	Code     *verification.Code
	State    string
	Active   bool
	Error    string
	Notice   string
	Expired  bool
	Searched bool
}

func (h *Handler) codeStatus(c echo.Context, st *state) error {
	p := codePage{UUID: strings.TrimSpace(c.QueryParam("uuid"))}
	if c.QueryParam("expired") == "1" {
		p.Notice = "The code was expired: it can no longer be used."
	}
	if p.UUID == "" {
		return h.render(c, http.StatusOK, "codes", st, "Check a code", p)
	}
	p.Searched = true
	code, err := h.ver.CodeStatus(c.Request().Context(), h.caller(st), p.UUID)
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		p.Error = msg
		if verification.ErrorCode(err) == api.ErrVerifyCodeNotFound {
			p.Error = "No code with this tracking ID was found in this realm. Codes are removed two days after their link expires."
		}
		return h.render(c, verification.Status(verification.ErrorCode(err)), "codes", st, "Check a code", p)
	}
	p.Code = code
	now := h.opts.Now()
	switch {
	case code.Claimed:
		p.State = "Used: the app has redeemed this code."
	case !now.Before(code.LongExpiresAt):
		p.State = "Expired: neither the code nor the link can be used."
	case !now.Before(code.ExpiresAt):
		p.State = "The short code has expired; the link can still be used."
		p.Active = true
	default:
		p.State = "Not used yet: the code and the link can be used."
		p.Active = true
	}
	return h.render(c, http.StatusOK, "codes", st, "Check a code", p)
}

func (h *Handler) expireCode(c echo.Context, st *state) error {
	uuid := strings.TrimSpace(c.FormValue("uuid"))
	code, err := h.ver.ExpireCode(c.Request().Context(), h.caller(st), uuid)
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		return h.render(c, verification.Status(verification.ErrorCode(err)), "codes", st, "Check a code", codePage{UUID: uuid, Error: msg, Searched: true})
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/codes?expired=1&uuid="+url.QueryEscape(code.UUID))
}

// issueOne issues one bulk row.
func (h *Handler) issueOne(c echo.Context, st *state, r bulkRow, tz int) bulkResult {
	res := bulkResult{bulkRow: r}
	if r.Error != "" {
		res.Status = statusFailed
		return res
	}
	is, err := h.ver.Issue(c.Request().Context(), h.caller(st), &api.IssueCodeRequest{
		TestType: r.TestType, SymptomDate: r.SymptomDate, TestDate: r.TestDate, TZOffset: float64(tz), UUID: r.UUID,
	})
	switch {
	case err == nil:
		res.Status, res.Code, res.LongCode, res.Link = statusIssued, is.Code, is.LongCode, is.LongCodeLink
		res.ExpiresAt, res.LongExpiresAt = is.ExpiresAt.Unix(), is.LongExpiresAt.Unix()
	case verification.ErrorCode(err) == api.ErrUUIDAlreadyExists:
		res.Status = statusEarlier
		res.Error = "issued by an earlier upload of this file; its code is in that upload's results"
	default:
		res.Status = statusFailed
		if res.Error = userMessage(err); res.Error == "" {
			h.log.ErrorContext(c.Request().Context(), "ui: bulk issue", "err", err)
			res.Error = "internal error; upload the file again to retry this row"
		}
	}
	return res
}

var errNoFile = errors.New("choose a CSV file to upload")
