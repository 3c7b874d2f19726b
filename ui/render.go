package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/verification/account"
)

// view is what every template gets: the page's data and the frame around
// it (navigation, the user, the realm switcher, the CSRF token).
type view struct {
	Title string
	// Path is the request path, to mark the current navigation entry.
	Path   string
	User   *account.User
	Role   account.Role
	Realm  string
	Realms []string
	CSRF   string
	Assets map[string]string
	Data   any
	// loc is the time zone of every date and time on the page.
	loc *time.Location
}

// SignedIn reports whether the page is shown to a complete session.
func (v *view) SignedIn() bool { return v.User != nil }

// IsAdmin reports whether the user is an admin of the current realm.
func (v *view) IsAdmin() bool {
	return v.User != nil && v.Realm != "" && v.User.Can(v.Realm, account.RoleAdmin)
}

// IsWorker reports whether the user may issue codes in the current realm.
func (v *view) IsWorker() bool {
	return v.User != nil && v.Realm != "" && v.User.Can(v.Realm, account.RoleWorker)
}

// IsSystem reports whether the user is a system admin.
func (v *view) IsSystem() bool { return v.User != nil && v.User.System }

// Current returns "page" when p is the current page, for aria-current.
func (v *view) Current(p string) string {
	if v.Path == p {
		return "page"
	}
	return ""
}

// Time formats t in the page's time zone, with the zone: a time without
// its zone is read in the reader's own.
func (v *view) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(v.loc).Format("2 Jan 2006, 15:04 MST")
}

// Clock formats t as a time of day in the page's time zone, with the zone.
func (v *view) Clock(t time.Time) string { return t.In(v.loc).Format("15:04 MST") }

// Zone names the page's time zone (IANA name).
func (v *view) Zone() string { return v.loc.String() }

// templateFuncs are the functions the templates use.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		// groups splits a code into groups of four for reading aloud.
		"groups": func(code string) string {
			var parts []string
			for len(code) > 4 {
				parts, code = append(parts, code[:4]), code[4:]
			}
			return strings.Join(append(parts, code), " ")
		},
		// spell separates characters with spaces, for screen readers.
		"spell": func(code string) string { return strings.Join(strings.Split(code, ""), " ") },
		"unix":  func(t time.Time) int64 { return t.Unix() },
		"duration": func(d time.Duration) string {
			switch {
			case d >= time.Hour && d%time.Hour == 0:
				return plural(int(d/time.Hour), "hour")
			case d >= time.Minute && d%time.Minute == 0:
				return plural(int(d/time.Minute), "minute")
			}
			return d.String()
		},
		"minutes": func(d time.Duration) int { return int(d / time.Minute) },
		"hours":   func(d time.Duration) int { return int(d / time.Hour) },
		"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"contains": func(list []string, s string) bool {
			for _, x := range list {
				if x == s {
					return true
				}
			}
			return false
		},
		"testTypeName": testTypeName,
		"roleName":     func(r account.Role) string { return r.String() },
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// testTypeName is a test type as health workers say it.
func testTypeName(t string) string {
	switch t {
	case "confirmed":
		return "Confirmed positive test"
	case "likely":
		return "Likely positive (clinical diagnosis)"
	case "negative":
		return "Negative test"
	case "user-report":
		return "Self-reported"
	}
	return t
}

// location is the user's time zone; UTC when unset or unknown.
func location(u *account.User) *time.Location {
	if u != nil {
		if l, ok := loadZone(u.TimeZone); ok {
			return l
		}
	}
	return time.UTC
}

// loadZone loads an IANA time zone by name. "" and "Local" are refused:
// they would mean UTC or the server's zone, never the health worker's.
func loadZone(name string) (*time.Location, bool) {
	if name == "" || name == "Local" {
		return nil, false
	}
	l, err := time.LoadLocation(name)
	return l, err == nil
}

// render executes page name with data inside the layout.
func (h *Handler) render(c echo.Context, status int, name string, st *state, title string, data any) error {
	t, ok := h.pages[name]
	if !ok {
		return fmt.Errorf("ui: no template %s", name)
	}
	v := &view{Title: title, Path: c.Request().URL.Path, Assets: h.assetURLs, Data: data, loc: time.UTC}
	if st != nil && st.sess != nil {
		v.CSRF = st.sess.CSRF
	}
	if st != nil && st.loc != nil {
		v.loc = st.loc
	}
	if st != nil && st.sess != nil && !st.sess.PendingTOTP {
		v.User, v.Realms = st.user, st.realms
		if st.realm != nil {
			v.Realm = st.realm.Name
			v.Role = st.user.RoleIn(st.realm.Name)
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.ErrorContext(c.Request().Context(), "ui: render", "template", name, "err", err)
		return c.String(http.StatusInternalServerError, "internal error")
	}
	return c.HTMLBlob(status, buf.Bytes())
}
