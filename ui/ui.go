package ui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	_ "time/tzdata" // users' time zones, also where the system has no zoneinfo

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Prefix is where the UI is served.
const Prefix = "/ui"

// Defaults of Options.
const (
	DefaultMaxBulkRows = 1000
	// maxFormBytes bounds ordinary form bodies; maxBulkBytes CSV uploads.
	maxFormBytes = 64 << 10
	maxBulkBytes = 2 << 20
)

// Options configure the UI.
type Options struct {
	Accounts     *account.Service
	Verification *verification.Service
	Log          *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SecureCookies marks cookies Secure (with the __Host- prefix) and sends
	// HSTS; set it when the public URL is https. Requests that arrive over
	// TLS get Secure cookies anyway.
	SecureCookies bool
	// AddRealm creates a realm for a system admin, wired by the server so
	// that the built-in key server trusts it.
	AddRealm func(ctx context.Context, r verification.Realm) (*verification.Realm, error)
	// RealmChanged is told after an admin changed a realm's code policy.
	RealmChanged func(ctx context.Context, r *verification.Realm) error
	// MaxBulkRows bounds the rows of one bulk-issue file (DefaultMaxBulkRows).
	MaxBulkRows int
	// MaxDateAgeDays is how far back symptom and test dates may lie, as the
	// verification service allows (verification.DefaultMaxDateAgeDays).
	MaxDateAgeDays int
}

// Handler serves the UI.
type Handler struct {
	acct  *account.Service
	ver   *verification.Service
	log   *slog.Logger
	opts  Options
	pages map[string]*template.Template
	// assets by name, and their cache-busting URLs.
	assets    map[string]asset
	assetURLs map[string]string
	cop       *http.CrossOriginProtection
	signins   signinLimit
}

type asset struct {
	body        []byte
	contentType string
	version     string
}

// New parses the templates and loads the assets.
func New(opts Options) (*Handler, error) {
	if opts.Accounts == nil || opts.Verification == nil {
		return nil, errors.New("ui: Accounts and Verification are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBulkRows <= 0 {
		opts.MaxBulkRows = DefaultMaxBulkRows
	}
	if opts.MaxDateAgeDays <= 0 {
		opts.MaxDateAgeDays = verification.DefaultMaxDateAgeDays
	}
	h := &Handler{acct: opts.Accounts, ver: opts.Verification, log: opts.Log, opts: opts,
		assets: map[string]asset{}, assetURLs: map[string]string{}, cop: http.NewCrossOriginProtection()}
	if err := h.loadAssets(); err != nil {
		return nil, err
	}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Handler) loadAssets() error {
	return fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return fmt.Errorf("ui: asset %s: %w", p, err)
		}
		sum := sha256.Sum256(b)
		name := path.Base(p)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		a := asset{body: b, contentType: ct, version: hex.EncodeToString(sum[:6])}
		h.assets[name] = a
		h.assetURLs[name] = Prefix + "/assets/" + name + "?v=" + a.version
		return nil
	})
}

func (h *Handler) parseTemplates() error {
	layout, err := templateFS.ReadFile("templates/layout.html")
	if err != nil {
		return fmt.Errorf("ui: templates: %w", err)
	}
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		return fmt.Errorf("ui: templates: %w", err)
	}
	h.pages = map[string]*template.Template{}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".html")
		if name == "layout" {
			continue
		}
		body, err := templateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			return fmt.Errorf("ui: template %s: %w", name, err)
		}
		t, err := template.New("layout").Funcs(templateFuncs()).Parse(string(layout))
		if err == nil {
			_, err = t.Parse(string(body))
		}
		if err != nil {
			return fmt.Errorf("ui: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return nil
}

// Register adds the UI's routes to e.
func (h *Handler) Register(e *echo.Echo) {
	e.GET(Prefix, func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, Prefix+"/") })
	g := e.Group(Prefix, h.headers, h.limitBody, h.load)
	g.GET("/assets/:name", h.asset)
	g.GET("/", h.home)

	g.GET("/signin", h.page(public, h.signinForm))
	g.POST("/signin", h.page(public, h.signin))
	g.GET("/signin/totp", h.page(pendingTOTP, h.totpForm))
	g.POST("/signin/totp", h.page(pendingTOTP, h.totp))
	g.POST("/signout", h.page(public, h.signout))

	g.GET("/account", h.page(signedIn, h.accountPage))
	g.POST("/account/password", h.page(signedIn, h.changePassword))
	g.GET("/account/timezone", h.page(signedIn, h.zoneForm))
	g.POST("/account/timezone", h.page(signedIn, h.setTimeZone))
	g.GET("/account/totp", h.page(signedIn, h.totpSetup))
	g.POST("/account/totp", h.page(signedIn, h.totpConfirm))
	g.POST("/account/totp/disable", h.page(signedIn, h.totpDisable))
	g.POST("/realm", h.page(signedIn, h.switchRealm))
	g.GET("/invitations", h.page(signedIn, h.invitations))
	g.POST("/invitations", h.page(signedIn, h.answerInvitation))

	g.GET("/issue", h.page(worker, h.issueForm))
	g.POST("/issue", h.page(worker, h.issue))
	g.GET("/bulk", h.page(worker, h.bulkForm))
	g.POST("/bulk", h.page(worker, h.bulk))
	g.POST("/bulk/parse", h.page(worker, h.bulkParse))
	g.POST("/bulk/issue", h.page(worker, h.bulkIssue))
	g.GET("/codes", h.page(worker, h.codeStatus))
	g.POST("/codes/expire", h.page(worker, h.expireCode))

	g.GET("/stats", h.page(admin, h.stats))
	g.GET("/admin/users", h.page(admin, h.users))
	g.POST("/admin/users", h.page(admin, h.addUser))
	g.GET("/admin/users/:id/:action", h.page(admin, h.confirmUserAction))
	g.POST("/admin/users/:id/:action", h.page(admin, h.userAction))
	g.POST("/admin/invitations/:id/withdraw", h.page(admin, h.withdrawInvitation))
	g.GET("/admin/apikeys", h.page(admin, h.apiKeys))
	g.POST("/admin/apikeys", h.page(admin, h.addAPIKey))
	g.GET("/admin/apikeys/:id/revoke", h.page(admin, h.confirmRevoke))
	g.POST("/admin/apikeys/:id/revoke", h.page(admin, h.revokeAPIKey))
	g.GET("/admin/policy", h.page(admin, h.policyForm))
	g.POST("/admin/policy", h.page(admin, h.policy))
	g.GET("/admin/audit", h.page(admin, h.audit))

	g.GET("/system/realms", h.page(system, h.realms))
	g.POST("/system/realms", h.page(system, h.addRealm))
	g.POST("/system/admins", h.page(system, h.addSystemAdmin))

	g.Any("/*", h.page(public, h.notFound))
}

// ---- Middleware ----

// csp allows scripts, styles and fetches from this origin only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets the security headers of every UI response.
func (h *Handler) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hd := c.Response().Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		hd.Set("X-Robots-Tag", "noindex, nofollow")
		hd.Set(echo.HeaderCacheControl, "no-store")
		if h.secure(c.Request()) {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// limitBody bounds request bodies: CSV uploads to maxBulkBytes, every
// other form to maxFormBytes.
func (h *Handler) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := int64(maxFormBytes)
		if strings.HasPrefix(c.Request().URL.Path, Prefix+"/bulk") {
			limit = maxBulkBytes
		}
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, limit)
		return next(c)
	}
}

func (h *Handler) secure(r *http.Request) bool { return h.opts.SecureCookies || r.TLS != nil }

// Cookie names; the __Host- prefix (Secure, Path=/, no Domain) when secure.
func (h *Handler) cookieName(r *http.Request, base string) string {
	if h.secure(r) {
		return "__Host-" + base
	}
	return base
}

const (
	sessionCookie = "candor_session"
	signinCookie  = "candor_signin"
)

func (h *Handler) setCookie(c echo.Context, base, value string, maxAge int) {
	http.SetCookie(c.Response(), &http.Cookie{
		Name: h.cookieName(c.Request(), base), Value: value, Path: "/", MaxAge: maxAge,
		Secure: h.secure(c.Request()), HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func (h *Handler) cookie(c echo.Context, base string) string {
	ck, err := c.Request().Cookie(h.cookieName(c.Request(), base))
	if err != nil {
		return ""
	}
	return ck.Value
}

// state is what the UI knows about a request: its session and user, and
// the realm it works in.
type state struct {
	token string
	sess  *account.Session
	user  *account.User
	realm *verification.Realm
	// realms the user can switch to.
	realms []string
	// loc is the time zone of the dates the user enters and the times they
	// see: the user's own, or the one a submitted form was shown in.
	loc *time.Location
}

const stateKey = "candor.ui"

// load reads the session cookie; a valid session's user and realm are put
// into the request's state.
func (h *Handler) load(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		st := &state{}
		c.Set(stateKey, st)
		if strings.HasPrefix(c.Request().URL.Path, Prefix+"/assets/") {
			return next(c)
		}
		tok := h.cookie(c, sessionCookie)
		if tok == "" {
			return next(c)
		}
		sess, u, err := h.acct.Authenticate(c.Request().Context(), tok)
		if errors.Is(err, account.ErrNoSession) {
			h.setCookie(c, sessionCookie, "", -1)
			return next(c)
		}
		if err != nil {
			return h.fail(c, st, err)
		}
		st.token, st.sess, st.user, st.loc = tok, sess, u, location(u)
		// The services record the admin actions under the signed-in user.
		c.SetRequest(c.Request().WithContext(verification.NewContextWithActor(c.Request().Context(), account.AsUser(u))))
		if err := h.resolveRealm(c.Request().Context(), st); err != nil {
			return h.fail(c, st, err)
		}
		return next(c)
	}
}

// resolveRealm picks the session's realm, or the user's first when the
// session's is no longer theirs.
func (h *Handler) resolveRealm(ctx context.Context, st *state) error {
	st.realms = st.user.RealmNames()
	if st.user.System {
		all, err := h.ver.Realms(ctx)
		if err != nil {
			return err
		}
		st.realms = st.realms[:0]
		for _, r := range all {
			st.realms = append(st.realms, r.Name)
		}
	}
	name := st.sess.Realm
	if !st.user.Can(name, account.RoleWorker) {
		name = ""
		if len(st.realms) > 0 {
			name = st.realms[0]
		}
	}
	if name == "" {
		return nil
	}
	r, err := h.ver.Realm(ctx, name)
	if errors.Is(err, verification.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	st.realm = r
	return nil
}

// access is who may see a page.
type access int

const (
	public      access = iota // anyone, signed in or not
	pendingTOTP               // a session waiting for its second factor
	signedIn                  // a complete session, even one that must change its password
	worker                    // a health worker of the current realm
	admin                     // a realm admin of the current realm
	system                    // a system admin
)

// page wraps a handler: it checks the CSRF token of unsafe requests and the
// access, and redirects to sign-in, the second factor or the password
// change as the session needs.
func (h *Handler) page(need access, fn func(echo.Context, *state) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		st := c.Get(stateKey).(*state)
		r := c.Request()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := h.checkCSRF(c, st); err != nil {
				h.log.InfoContext(r.Context(), "ui: form refused", "route", c.Path(), "reason", err)
				return h.render(c, http.StatusForbidden, "error", st, "Form refused", errorPage{
					Heading: "This form was refused",
					Message: "It did not carry this page's security token, or was sent from another site. Go back, reload the page and try again.",
				})
			}
		}
		if need == public {
			return fn(c, st)
		}
		if st.sess == nil {
			if r.Method == http.MethodGet {
				return c.Redirect(http.StatusSeeOther, Prefix+"/signin?next="+url.QueryEscape(r.URL.RequestURI()))
			}
			return h.render(c, http.StatusUnauthorized, "error", st, "Signed out", errorPage{
				Heading: "You are signed out", Message: "Your session ended. Sign in again; what you sent was not saved.", Link: Prefix + "/signin", LinkText: "Sign in",
			})
		}
		if st.sess.PendingTOTP != (need == pendingTOTP) {
			if st.sess.PendingTOTP {
				return c.Redirect(http.StatusSeeOther, Prefix+"/signin/totp")
			}
			return c.Redirect(http.StatusSeeOther, Prefix+"/")
		}
		if need == pendingTOTP {
			return fn(c, st)
		}
		if st.user.MustChangePassword && c.Path() != Prefix+"/account" && c.Path() != Prefix+"/account/password" {
			return c.Redirect(http.StatusSeeOther, Prefix+"/account")
		}
		// Dates are entered in the user's time zone, so it is asked for
		// (filled in from the browser) before the first page that needs it.
		if st.user.TimeZone == "" && need != signedIn && r.Method == http.MethodGet {
			return c.Redirect(http.StatusSeeOther, Prefix+"/account/timezone?next="+url.QueryEscape(r.URL.RequestURI()))
		}
		var ok bool
		switch need {
		case signedIn:
			ok = true
		case worker, admin:
			role := account.RoleWorker
			if need == admin {
				role = account.RoleAdmin
			}
			if st.realm == nil && st.user.System {
				return c.Redirect(http.StatusSeeOther, Prefix+"/system/realms")
			}
			ok = st.realm != nil && st.user.Can(st.realm.Name, role)
		case system:
			ok = st.user.System
		}
		if !ok {
			return h.forbidden(c, st)
		}
		return fn(c, st)
	}
}

func (h *Handler) forbidden(c echo.Context, st *state) error {
	return h.render(c, http.StatusForbidden, "error", st, "Not allowed", errorPage{
		Heading: "You cannot open this page",
		Message: "Your role in this realm does not include it. Ask a realm admin if you need it.",
		Link:    Prefix + "/", LinkText: "Back to the start page",
	})
}

// checkCSRF: the request must pass net/http's cross-origin check and carry
// the session's CSRF token (form field csrf or header X-CSRF-Token); before
// sign-in, the token of the sign-in cookie (double submit).
func (h *Handler) checkCSRF(c echo.Context, st *state) error {
	r := c.Request()
	if err := h.cop.Check(r); err != nil {
		return err
	}
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = c.FormValue("csrf")
	}
	// The sign-in form is checked by its own token, even when a session
	// (one waiting for its second factor) exists.
	if st.sess != nil && r.URL.Path != Prefix+"/signin" {
		if !account.CheckCSRF(st.sess, tok) {
			return errors.New("missing or wrong CSRF token")
		}
		return nil
	}
	want := h.cookie(c, signinCookie)
	if want == "" || tok == "" || !account.CheckCSRF(&account.Session{CSRF: want}, tok) {
		return errors.New("missing or wrong sign-in CSRF token")
	}
	return nil
}

// signinToken returns the double-submit token of the sign-in form, setting
// its cookie when there is none.
func (h *Handler) signinToken(c echo.Context) string {
	if t := h.cookie(c, signinCookie); len(t) >= 32 {
		return t
	}
	b := make([]byte, 32)
	rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	h.setCookie(c, signinCookie, t, 0)
	return t
}

// ---- Assets and misc ----

func (h *Handler) asset(c echo.Context) error {
	a, ok := h.assets[c.Param("name")]
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	hd := c.Response().Header()
	if c.QueryParam("v") == a.version {
		hd.Set(echo.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		hd.Set(echo.HeaderCacheControl, "no-cache")
	}
	hd.Set("ETag", `"`+a.version+`"`)
	if c.Request().Header.Get("If-None-Match") == `"`+a.version+`"` {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}

func (h *Handler) home(c echo.Context) error {
	st := c.Get(stateKey).(*state)
	switch {
	case st.sess == nil:
		return c.Redirect(http.StatusSeeOther, Prefix+"/signin")
	case st.sess.PendingTOTP:
		return c.Redirect(http.StatusSeeOther, Prefix+"/signin/totp")
	case st.user.MustChangePassword:
		return c.Redirect(http.StatusSeeOther, Prefix+"/account")
	case st.realm == nil && st.user.System:
		return c.Redirect(http.StatusSeeOther, Prefix+"/system/realms")
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/issue")
}

func (h *Handler) notFound(c echo.Context, st *state) error {
	return h.render(c, http.StatusNotFound, "error", st, "Not found", errorPage{
		Heading: "There is no such page", Message: "Check the address, or start again from the start page.", Link: Prefix + "/", LinkText: "Start page",
	})
}

// errorPage is the data of the error template.
type errorPage struct {
	Heading, Message string
	Link, LinkText   string
}

// fail answers an unexpected error: logged (never with codes or
// passwords, which no error here carries), and a plain 500 page.
func (h *Handler) fail(c echo.Context, st *state, err error) error {
	h.log.ErrorContext(c.Request().Context(), "ui request failed", "route", c.Path(), "err", err)
	return h.render(c, http.StatusInternalServerError, "error", st, "Error", errorPage{
		Heading: "Something went wrong", Message: "The server could not do this. Try again in a moment; if it keeps failing, tell your administrator.",
		Link: Prefix + "/", LinkText: "Start page",
	})
}

// userMessage returns the message of an error the user can act on, or ""
// for an internal one.
func userMessage(err error) string {
	var ve *api.Error
	if errors.As(err, &ve) {
		if ve.Code == "internal_server_error" {
			return ""
		}
		return sentence(ve.Message)
	}
	var ie *account.InputError
	var pe *account.PasswordError
	var te *account.ThrottledError
	switch {
	case errors.As(err, &ie), errors.As(err, &pe), errors.As(err, &te):
		return err.Error()
	case errors.Is(err, account.ErrBadCredentials), errors.Is(err, account.ErrBadTOTP), errors.Is(err, account.ErrBadPassword),
		errors.Is(err, account.ErrForbidden), errors.Is(err, account.ErrNoSealer):
		for _, e := range []error{account.ErrBadCredentials, account.ErrBadTOTP, account.ErrBadPassword, account.ErrForbidden, account.ErrNoSealer} {
			if errors.Is(err, e) {
				return e.Error()
			}
		}
	}
	return ""
}

// sentence capitalises msg and ends it with a full stop.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}
