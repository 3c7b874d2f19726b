package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/internal/ratelimit"
	"github.com/candor-en/candor/verification/account"
)

// DefaultSignInsPerAddress bounds sign-in attempts per client address and
// minute: enough for a clinic whose staff share one address at the start
// of a shift, far too few to keep the password hashes busy.
const DefaultSignInsPerAddress = 30

// busyRetryAfter is the Retry-After of a sign-in refused because every
// password-hash slot and queue place is taken: the queue drains in about
// a second.
const busyRetryAfter = 2 * time.Second

// SignInLimits bound sign-in attempts (POST /ui/signin).
type SignInLimits struct {
	// Limiter counts attempts per client address: the request limiter of
	// the server, which keys addresses by an HMAC under a daily key and
	// shares counts through Redis when the store does. Nil counts none.
	Limiter *ratelimit.Limiter
	// PerAddress bounds attempts per address and minute
	// (DefaultSignInsPerAddress when 0); more get 429 with Retry-After
	// before any password is checked.
	PerAddress int
	// Refused, when set, hears of every refused attempt: "address" (over
	// PerAddress) or "busy" (the password-hash queue is full: 503).
	Refused func(reason string)
}

// signinLimit is how the handler applies SignInLimits.
type signinLimit struct {
	limiter *ratelimit.Limiter
	rules   []ratelimit.Rule
	refused func(reason string)
}

// LimitSignIns applies l to sign-in attempts.
func (h *Handler) LimitSignIns(l SignInLimits) {
	if l.PerAddress == 0 {
		l.PerAddress = DefaultSignInsPerAddress
	}
	if l.Refused == nil {
		l.Refused = func(string) {}
	}
	h.signins = signinLimit{limiter: l.Limiter, refused: l.Refused, rules: []ratelimit.Rule{
		{Name: "ui-signin-address", Limit: l.PerAddress, Window: time.Minute, Key: ratelimit.AddressKey},
	}}
}

// landing is where a signed-in user goes next: their open invitations
// first (they answer them at sign-in), then next, else the start page.
func landing(u *account.User, next string) string {
	if next == "" {
		next = Prefix + "/"
	}
	if len(u.Invitations) > 0 {
		return Prefix + "/invitations?next=" + url.QueryEscape(next)
	}
	return next
}

type signinPage struct {
	CSRF  string
	Email string
	Next  string
	Error string
	// Notice is shown above the form, e.g. after signing out.
	Notice string
}

// safeNext returns next when it is a UI path of this site, else "".
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix+"/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") &&
		!strings.HasPrefix(next, Prefix+"/signin") && !strings.HasPrefix(next, Prefix+"/signout") {
		return next
	}
	return ""
}

func (h *Handler) signinForm(c echo.Context, st *state) error {
	if st.sess != nil && !st.sess.PendingTOTP {
		return c.Redirect(http.StatusSeeOther, Prefix+"/")
	}
	p := signinPage{CSRF: h.signinToken(c), Next: safeNext(c.QueryParam("next"))}
	if c.QueryParam("out") == "1" {
		p.Notice = "You are signed out."
	}
	return h.render(c, http.StatusOK, "signin", st, "Sign in", p)
}

func (h *Handler) signin(c echo.Context, st *state) error {
	email, password := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	p := signinPage{Email: email, Next: safeNext(c.FormValue("next"))}
	if l := h.signins.limiter; l != nil {
		res := l.Check(c, h.signins.rules)
		ratelimit.Headers(c.Response().Header(), res)
		if !res.Allowed {
			h.signins.refused("address")
			secs := c.Response().Header().Get("Retry-After")
			p.CSRF, p.Error = h.signinToken(c), "Too many sign-in attempts from your network. Try again in "+secs+" seconds."
			return h.render(c, http.StatusTooManyRequests, "signin", st, "Sign in", p)
		}
	}
	if email == "" || password == "" {
		p.CSRF, p.Error = h.signinToken(c), "Enter your email address and password."
		return h.render(c, http.StatusBadRequest, "signin", st, "Sign in", p)
	}
	in, err := h.acct.SignIn(c.Request().Context(), email, password)
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		status := http.StatusUnauthorized
		var te *account.ThrottledError
		switch {
		case errors.As(err, &te):
			status = http.StatusTooManyRequests
		case errors.Is(err, account.ErrBusy):
			if h.signins.refused != nil {
				h.signins.refused("busy")
			}
			status = http.StatusServiceUnavailable
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(busyRetryAfter/time.Second)))
		}
		p.CSRF, p.Error = h.signinToken(c), msg
		return h.render(c, status, "signin", st, "Sign in", p)
	}
	if st.token != "" {
		_ = h.acct.SignOut(c.Request().Context(), st.token)
	}
	h.setCookie(c, signinCookie, "", -1)
	h.setCookie(c, sessionCookie, in.Token, 0)
	if in.Session.PendingTOTP {
		return c.Redirect(http.StatusSeeOther, Prefix+"/signin/totp?next="+url.QueryEscape(p.Next))
	}
	if in.User.MustChangePassword {
		return c.Redirect(http.StatusSeeOther, Prefix+"/account")
	}
	return c.Redirect(http.StatusSeeOther, landing(in.User, p.Next))
}

type totpSigninPage struct {
	Next  string
	Error string
}

func (h *Handler) totpForm(c echo.Context, st *state) error {
	return h.render(c, http.StatusOK, "signin_totp", st, "Second step of sign-in", totpSigninPage{Next: safeNext(c.QueryParam("next"))})
}

func (h *Handler) totp(c echo.Context, st *state) error {
	p := totpSigninPage{Next: safeNext(c.FormValue("next"))}
	in, err := h.acct.CompleteTOTP(c.Request().Context(), st.sess, st.user, c.FormValue("code"))
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		var te *account.ThrottledError
		if errors.As(err, &te) {
			// Start again from the password once the window ends.
			_ = h.acct.SignOut(c.Request().Context(), st.token)
			h.setCookie(c, sessionCookie, "", -1)
			st.sess = nil
			return h.render(c, http.StatusTooManyRequests, "signin", st, "Sign in", signinPage{CSRF: h.signinToken(c), Error: msg})
		}
		p.Error = msg
		return h.render(c, http.StatusUnauthorized, "signin_totp", st, "Second step of sign-in", p)
	}
	h.setCookie(c, sessionCookie, in.Token, 0)
	if in.User.MustChangePassword {
		return c.Redirect(http.StatusSeeOther, Prefix+"/account")
	}
	return c.Redirect(http.StatusSeeOther, landing(in.User, p.Next))
}

func (h *Handler) signout(c echo.Context, st *state) error {
	if st.token != "" {
		if err := h.acct.SignOut(c.Request().Context(), st.token); err != nil {
			return h.fail(c, st, err)
		}
	}
	h.setCookie(c, sessionCookie, "", -1)
	return c.Redirect(http.StatusSeeOther, Prefix+"/signin?out=1")
}

// ---- Account: password, time zone, second factor ----

type accountPage struct {
	MustChange     bool
	PasswordError  string
	PasswordNotice string
	TimeZone       string
	ZoneNotice     string
	HasTOTP        bool
	TOTPAvailable  bool
	TOTPError      string
	TOTPNotice     string
	MinPassword    int
}

func (h *Handler) accountData(st *state) accountPage {
	return accountPage{MustChange: st.user.MustChangePassword, TimeZone: st.user.TimeZone, HasTOTP: st.user.HasTOTP(),
		TOTPAvailable: h.acct.TOTPAvailable(), MinPassword: account.MinPasswordLength}
}

func (h *Handler) accountPage(c echo.Context, st *state) error {
	p := h.accountData(st)
	switch c.QueryParam("done") {
	case "password":
		p.PasswordNotice = "Your password was changed. You were signed out on every other device."
	case "totp":
		p.TOTPNotice = "Two-step sign-in is on. From now on you will be asked for a code from the app."
	case "totp-off":
		p.TOTPNotice = "Two-step sign-in is off."
	case "zone":
		p.ZoneNotice = "Your time zone was saved."
	}
	return h.render(c, http.StatusOK, "account", st, "Your account", p)
}

func (h *Handler) changePassword(c echo.Context, st *state) error {
	current, next, again := c.FormValue("current"), c.FormValue("new"), c.FormValue("confirm")
	p := h.accountData(st)
	if next != again {
		p.PasswordError = "The two new passwords are not the same."
		return h.render(c, http.StatusBadRequest, "account", st, "Your account", p)
	}
	in, err := h.acct.ChangePassword(c.Request().Context(), st.sess, st.user, current, next)
	if err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		p.PasswordError = msg
		return h.render(c, http.StatusBadRequest, "account", st, "Your account", p)
	}
	h.setCookie(c, sessionCookie, in.Token, 0)
	if p.MustChange {
		return c.Redirect(http.StatusSeeOther, landing(in.User, ""))
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/account?done=password")
}

type totpSetupPage struct {
	QR     *qrSVG
	Secret string
	Error  string
}

func (h *Handler) totpSetup(c echo.Context, st *state) error {
	return h.showTOTPSetup(c, st, http.StatusOK, "")
}

func (h *Handler) showTOTPSetup(c echo.Context, st *state, status int, msg string) error {
	if st.user.HasTOTP() {
		return c.Redirect(http.StatusSeeOther, Prefix+"/account")
	}
	secret, err := h.acct.BeginTOTP(c.Request().Context(), st.sess, st.user)
	if err != nil {
		if m := userMessage(err); m != "" {
			p := h.accountData(st)
			p.TOTPError = m
			return h.render(c, http.StatusBadRequest, "account", st, "Your account", p)
		}
		return h.fail(c, st, err)
	}
	qr, err := newQR(account.TOTPURI(h.acct.Options().TOTPIssuer, st.user.Email, secret), "QR code to add this account to an authenticator app")
	if err != nil {
		return h.fail(c, st, err)
	}
	return h.render(c, status, "totp_setup", st, "Set up two-step sign-in", totpSetupPage{QR: qr, Secret: account.TOTPSecretText(secret), Error: msg})
}

func (h *Handler) totpConfirm(c echo.Context, st *state) error {
	if _, err := h.acct.ConfirmTOTP(c.Request().Context(), st.sess, st.user, c.FormValue("code")); err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		return h.showTOTPSetup(c, st, http.StatusBadRequest, msg)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/account?done=totp")
}

func (h *Handler) totpDisable(c echo.Context, st *state) error {
	if _, err := h.acct.DisableTOTP(c.Request().Context(), st.user, c.FormValue("password")); err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		p := h.accountData(st)
		p.TOTPError = msg
		return h.render(c, http.StatusBadRequest, "account", st, "Your account", p)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/account?done=totp-off")
}

func (h *Handler) switchRealm(c echo.Context, st *state) error {
	realm := c.FormValue("realm")
	if _, err := h.acct.SetRealm(c.Request().Context(), st.sess, st.user, realm); err != nil {
		if errors.Is(err, account.ErrForbidden) {
			return h.forbidden(c, st)
		}
		return h.fail(c, st, err)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/")
}

// ---- Invitations ----

type invitation struct {
	Realm string
	Role  account.Role
	By    string
}

type invitationsPage struct {
	Invitations []invitation
	Next        string
	Notice      string
	Error       string
}

func (h *Handler) invitationsPage(c echo.Context, st *state, status int, p invitationsPage) error {
	for _, r := range st.user.InvitationRealms() {
		inv := st.user.Invitations[r]
		p.Invitations = append(p.Invitations, invitation{Realm: r, Role: inv.Role, By: inv.By})
	}
	if p.Next = safeNext(c.QueryParam("next")); p.Next == "" {
		p.Next = Prefix + "/"
	}
	return h.render(c, status, "invitations", st, "Invitations", p)
}

func (h *Handler) invitations(c echo.Context, st *state) error {
	p := invitationsPage{}
	switch r := c.QueryParam("realm"); c.QueryParam("done") {
	case "accept":
		p.Notice = fmt.Sprintf("You joined realm %s. Switch to it with the realm menu.", r)
	case "decline":
		p.Notice = fmt.Sprintf("You declined the invitation of realm %s.", r)
	}
	return h.invitationsPage(c, st, http.StatusOK, p)
}

func (h *Handler) answerInvitation(c echo.Context, st *state) error {
	realm, answer := c.FormValue("realm"), c.FormValue("answer")
	if answer != "accept" && answer != "decline" {
		return h.invitationsPage(c, st, http.StatusBadRequest, invitationsPage{Error: "Choose Accept or Decline."})
	}
	if _, err := h.acct.AnswerInvitation(c.Request().Context(), st.user, realm, answer == "accept"); err != nil {
		msg := userMessage(err)
		if msg == "" {
			return h.fail(c, st, err)
		}
		return h.invitationsPage(c, st, http.StatusBadRequest, invitationsPage{Error: msg})
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/invitations?done="+answer+"&realm="+url.QueryEscape(realm))
}
