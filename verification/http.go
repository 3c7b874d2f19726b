package verification

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/ratelimit"
	"github.com/candor-en/candor/internal/web"
)

// ClientKeyName names the failed-redemption budget in client keys
// (ratelimit.Limiter.ClientKey).
const ClientKeyName = "verify-failures"

// DefaultAppLink is the default redirect of /v?c=<long code> for phones:
// the scheme that Exposure Notifications Express apps register.
const DefaultAppLink = "ens://v?c={code}"

// HandlerOptions configure the HTTP handler.
type HandlerOptions struct {
	// AppLink is where /v?c=<long code> redirects a phone, with "{code}"
	// replaced by the long code; DefaultAppLink when empty.
	AppLink string
	// ClientKey identifies the client of a request for the failed-redemption
	// budget: the HMAC of its address under the day's key, so that the
	// budget holds no address (ratelimit.Limiter.ClientKey, shared with the
	// request limits; a limiter of this handler's own when nil).
	ClientKey func(echo.Context) (string, error)
}

// Handler serves the verification device and admin APIs, the realms' JWKS
// and the long-code link over HTTP.
type Handler struct {
	svc       *Service
	log       *slog.Logger
	requests  *prometheus.CounterVec
	appLink   string
	clientKey func(echo.Context) (string, error)

	// verifyTimer and certTimer release the real and decoy answers of the
	// device endpoints alike (web.ReleaseTimer).
	verifyTimer web.ReleaseTimer
	certTimer   web.ReleaseTimer
}

// NewHandler returns the HTTP handler of svc, registering its metrics with reg.
func NewHandler(svc *Service, log *slog.Logger, reg prometheus.Registerer, opts HandlerOptions) (*Handler, error) {
	if opts.AppLink == "" {
		opts.AppLink = DefaultAppLink
	}
	if !strings.Contains(opts.AppLink, "{code}") {
		return nil, fmt.Errorf("app link %q: must contain {code}", opts.AppLink)
	}
	if opts.ClientKey == nil {
		l := ratelimit.New(nil, ratelimit.NewMemorySecrets(), ratelimit.Options{})
		opts.ClientKey = func(c echo.Context) (string, error) { return l.ClientKey(c, ClientKeyName) }
	}
	h := &Handler{
		svc: svc, log: log, appLink: opts.AppLink, clientKey: opts.ClientKey,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_verification_requests_total",
			Help: "Verification API requests by endpoint and outcome: ok, chaff, or the error code.",
		}, []string{"endpoint", "outcome"}),
	}
	if err := reg.Register(h.requests); err != nil {
		return nil, fmt.Errorf("verification metrics: %w", err)
	}
	return h, nil
}

// Register adds the routes to e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(api.VerifyPath, h.verify)
	e.POST(api.CertificatePath, h.certificate)
	e.POST(api.IssuePath, h.issue)
	e.POST(api.BatchIssuePath, h.batchIssue)
	e.POST(api.CheckCodeStatusPath, h.checkCodeStatus)
	e.POST(api.ExpireCodePath, h.expireCode)
	e.GET(api.JWKSPathPrefix+":realm", h.jwks)
	e.GET(api.LongCodeLinkPath, h.longCodeLink)
}

// begin authenticates the request and decodes its body into req. On
// failure it has already answered and returns a nil Caller.
func (h *Handler) begin(c echo.Context, endpoint string, kind APIKeyKind, req any) (*Caller, error) {
	caller, err := h.svc.Authenticate(c.Request().Context(), c.Request().Header.Get(api.APIKeyHeader), kind)
	if err != nil {
		return nil, h.fail(c, endpoint, err)
	}
	if err := web.DecodeJSON(c, req); err != nil {
		status := http.StatusBadRequest
		var de *web.DecodeError
		if errors.As(err, &de) && de.Status == http.StatusRequestEntityTooLarge {
			status = de.Status
		}
		h.requests.WithLabelValues(endpoint, api.ErrUnparsableRequest).Inc()
		return nil, h.reply(c, status, &api.ErrorResponse{Error: err.Error(), ErrorCode: api.ErrUnparsableRequest})
	}
	return caller, nil
}

// fail answers err with its status and the common error body.
func (h *Handler) fail(c echo.Context, endpoint string, err error) error {
	code := ErrorCode(err)
	status := Status(code)
	if status >= 500 && c.Request().Context().Err() != nil {
		// The client went away mid-request: nobody reads the answer, and it
		// is not a server fault worth an error line.
		h.requests.WithLabelValues(endpoint, "canceled").Inc()
		return nil
	}
	h.requests.WithLabelValues(endpoint, code).Inc()
	if status >= 500 {
		h.log.ErrorContext(c.Request().Context(), "verification request failed", "endpoint", endpoint, "err", err)
	}
	var e *api.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	return h.reply(c, status, &api.ErrorResponse{Error: errorMessage(err), ErrorCode: code})
}

func (h *Handler) ok(c echo.Context, endpoint string, resp any) error {
	h.requests.WithLabelValues(endpoint, "ok").Inc()
	return h.reply(c, http.StatusOK, resp)
}

// releaseKey holds, in the echo context of a device request, the
// release of its answer (see held); reply waits for it.
const releaseKey = "candor.release"

// held serves a device endpoint that takes decoys: a decoy (X-Chaff) is
// read and discarded, nothing authenticated or stored, and answered with
// fake(); a real request is served by serve. Both answers leave at a release
// time and padded size that tell nothing (web.ReleaseTimer, web.PadJSON).
func (h *Handler) held(c echo.Context, endpoint string, t *web.ReleaseTimer, fake func() any, serve echo.HandlerFunc) error {
	start := web.ReadBody(c)
	ctx := c.Request().Context()
	if c.Request().Header.Get(api.ChaffHeader) != "" {
		h.requests.WithLabelValues(endpoint, "chaff").Inc()
		c.Set(releaseKey, func(int) { t.Decoy(ctx, start) })
		return h.reply(c, http.StatusOK, fake())
	}
	c.Set(releaseKey, func(status int) { t.Real(ctx, start, status == http.StatusOK) })
	return serve(c)
}

// reply pads resp to a size drawn from one fixed distribution, holds it
// until its release when the endpoint takes decoys, and sends it, never
// cached.
func (h *Handler) reply(c echo.Context, status int, resp any) error {
	var pad *string
	switch r := resp.(type) {
	case *api.ErrorResponse:
		pad = &r.Padding
	case *api.VerifyCodeResponse:
		pad = &r.Padding
	case *api.VerificationCertificateResponse:
		pad = &r.Padding
	case *api.IssueCodeResponse:
		pad = &r.Padding
	case *api.BatchIssueCodeResponse:
		pad = &r.Padding
	case *api.CheckCodeStatusResponse:
		pad = &r.Padding
	case *api.ExpireCodeResponse:
		pad = &r.Padding
	default:
		pad = new(string)
	}
	b, err := web.PadJSON(resp, pad)
	if err != nil {
		return err
	}
	if release, ok := c.Get(releaseKey).(func(int)); ok {
		release(status)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSONBlob(status, b)
}

func (h *Handler) verify(c echo.Context) error {
	return h.held(c, "verify", &h.verifyTimer, func() any {
		return &api.VerifyCodeResponse{TestType: api.TestTypeConfirmed, TestDate: UTCDay(time.Now().AddDate(0, 0, -rand.IntN(5))), VerificationToken: fakeJWT(170 + rand.IntN(40))}
	}, h.verifyReal)
}

func (h *Handler) verifyReal(c echo.Context) error {
	const endpoint = "verify"
	var req api.VerifyCodeRequest
	caller, err := h.begin(c, endpoint, DeviceKey, &req)
	if caller == nil {
		return err
	}
	if caller.Client, err = h.clientKey(c); err != nil {
		return h.fail(c, endpoint, internal("client key", err))
	}
	v, err := h.svc.Verify(c.Request().Context(), caller, &req)
	if err != nil {
		return h.fail(c, endpoint, err)
	}
	return h.ok(c, endpoint, &api.VerifyCodeResponse{TestType: v.TestType, SymptomDate: v.SymptomDate, TestDate: v.TestDate, VerificationToken: v.Token})
}

func (h *Handler) certificate(c echo.Context) error {
	return h.held(c, "certificate", &h.certTimer, func() any {
		return &api.VerificationCertificateResponse{Certificate: fakeJWT(230 + rand.IntN(30))}
	}, h.certificateReal)
}

func (h *Handler) certificateReal(c echo.Context) error {
	const endpoint = "certificate"
	var req api.VerificationCertificateRequest
	caller, err := h.begin(c, endpoint, DeviceKey, &req)
	if caller == nil {
		return err
	}
	cert, err := h.svc.Certificate(c.Request().Context(), caller, &req)
	if err != nil {
		return h.fail(c, endpoint, err)
	}
	return h.ok(c, endpoint, &api.VerificationCertificateResponse{Certificate: cert})
}

// fakeJWT returns a JWT-shaped string whose payload has n bytes: the shape
// and size of a real token or certificate, signed by nothing.
func fakeJWT(n int) string {
	header := web.RandomBase64(27)    // ~36 chars, like {"alg":"ES256","kid":"v1","typ":"JWT"}
	payload := web.RandomBase64(n)    // the claims
	sig := web.RandomBase64(64)       // r‖s
	rawURL := func(s string) string { // std → unpadded URL alphabet
		s = strings.TrimRight(s, "=")
		return strings.NewReplacer("+", "-", "/", "_").Replace(s)
	}
	return rawURL(header) + "." + rawURL(payload) + "." + rawURL(sig)
}

func issueResponse(is *Issued) *api.IssueCodeResponse {
	return &api.IssueCodeResponse{
		UUID:                   is.UUID,
		VerificationCode:       is.Code,
		ExpiresAt:              is.ExpiresAt.UTC().Format(time.RFC1123),
		ExpiresAtTimestamp:     is.ExpiresAt.Unix(),
		LongExpiresAt:          is.LongExpiresAt.UTC().Format(time.RFC1123),
		LongExpiresAtTimestamp: is.LongExpiresAt.Unix(),
		LongCode:               is.LongCode,
		LongCodeLink:           is.LongCodeLink,
	}
}

func (h *Handler) issue(c echo.Context) error {
	const endpoint = "issue"
	var req api.IssueCodeRequest
	caller, err := h.begin(c, endpoint, AdminKey, &req)
	if caller == nil {
		return err
	}
	is, err := h.svc.Issue(c.Request().Context(), caller, &req)
	if err != nil {
		return h.fail(c, endpoint, err)
	}
	return h.ok(c, endpoint, issueResponse(is))
}

func (h *Handler) batchIssue(c echo.Context) error {
	const endpoint = "batch-issue"
	var req api.BatchIssueCodeRequest
	caller, err := h.begin(c, endpoint, AdminKey, &req)
	if caller == nil {
		return err
	}
	results, err := h.svc.BatchIssue(c.Request().Context(), caller, &req)
	if err != nil {
		return h.fail(c, endpoint, err)
	}
	resp := &api.BatchIssueCodeResponse{Codes: make([]*api.IssueCodeResponse, len(results))}
	status, failed := http.StatusOK, 0
	for i, r := range results {
		if r.Err == nil {
			resp.Codes[i] = issueResponse(r.Issued)
			continue
		}
		code := ErrorCode(r.Err)
		resp.Codes[i] = &api.IssueCodeResponse{Error: errorMessage(r.Err), ErrorCode: code}
		if failed == 0 {
			status, resp.ErrorCode = Status(code), code
		}
		failed++
	}
	if failed > 0 {
		resp.Error = fmt.Sprintf("failed to issue %d of %d codes; see each code's error", failed, len(results))
		h.requests.WithLabelValues(endpoint, resp.ErrorCode).Inc()
		return h.reply(c, status, resp)
	}
	return h.ok(c, endpoint, resp)
}

func (h *Handler) checkCodeStatus(c echo.Context) error {
	const endpoint = "checkcodestatus"
	var req api.CheckCodeStatusRequest
	caller, err := h.begin(c, endpoint, AdminKey, &req)
	if caller == nil {
		return err
	}
	code, err := h.svc.CodeStatus(c.Request().Context(), caller, req.UUID)
	if err != nil {
		return h.fail(c, endpoint, err)
	}
	return h.ok(c, endpoint, &api.CheckCodeStatusResponse{
		Claimed:                code.Claimed,
		ExpiresAtTimestamp:     code.ExpiresAt.Unix(),
		LongExpiresAtTimestamp: code.LongExpiresAt.Unix(),
	})
}

func (h *Handler) expireCode(c echo.Context) error {
	const endpoint = "expirecode"
	var req api.ExpireCodeRequest
	caller, err := h.begin(c, endpoint, AdminKey, &req)
	if caller == nil {
		return err
	}
	code, err := h.svc.ExpireCode(c.Request().Context(), caller, req.UUID)
	if err != nil {
		return h.fail(c, endpoint, err)
	}
	return h.ok(c, endpoint, &api.ExpireCodeResponse{
		ExpiresAtTimestamp:     code.ExpiresAt.Unix(),
		LongExpiresAtTimestamp: code.LongExpiresAt.Unix(),
	})
}

func (h *Handler) jwks(c echo.Context) error {
	set, err := h.svc.JWKS(c.Request().Context(), c.Param("realm"))
	if errors.Is(err, ErrNotFound) {
		return c.JSON(http.StatusNotFound, map[string]string{"error": "unknown realm"})
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=60")
	return c.JSON(http.StatusOK, set)
}

var longCodeRE = regexp.MustCompile(`^[a-z0-9]{12,64}$`)

// longCodeLink answers the link https://<host>/v?c=<long code>: a phone is
// redirected to the app (AppLink); any other browser gets a page asking to
// open the link on the phone. The code is not looked up (no oracle) and not
// logged.
func (h *Handler) longCodeLink(c echo.Context) error {
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderCacheControl, "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Robots-Tag", "noindex")
	code := normalizeCode(c.QueryParam("c"))
	if !longCodeRE.MatchString(code) {
		return c.HTML(http.StatusBadRequest, linkPage("This verification link is not valid. Check that it was copied completely."))
	}
	if isPhone(c.Request().UserAgent()) {
		return c.Redirect(http.StatusSeeOther, strings.ReplaceAll(h.appLink, "{code}", url.QueryEscape(code)))
	}
	return c.HTML(http.StatusOK, linkPage("Open this link on the phone that has your exposure notification app installed."))
}

func isPhone(ua string) bool {
	for _, s := range []string{"Android", "iPhone", "iPad", "iPod"} {
		if strings.Contains(ua, s) {
			return true
		}
	}
	return false
}

func linkPage(msg string) string {
	return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Verification link</title></head><body><p>` + msg + `</p></body></html>`
}

// Status returns the HTTP status of a verification API error code; "" is 200.
func Status(code string) int {
	switch code {
	case "":
		return http.StatusOK
	case api.ErrUnauthorized:
		return http.StatusUnauthorized
	case api.ErrVerifyCodeNotFound:
		return http.StatusNotFound
	case api.ErrUUIDAlreadyExists:
		return http.StatusConflict
	case api.ErrUnsupportedTestType:
		return http.StatusPreconditionFailed
	case api.ErrMaintenanceMode, api.ErrQuotaExceeded, api.ErrRateLimited:
		return http.StatusTooManyRequests
	case api.ErrInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// ErrorCode returns the API code of err: the code of an *api.Error, or
// internal_server_error for anything else.
func ErrorCode(err error) string {
	return api.ErrorCode(err, api.ErrInternal)
}

// errorMessage is the text shown to clients for err: never an internal
// error's details.
func errorMessage(err error) string {
	var e *api.Error
	if errors.As(err, &e) && e.Code != api.ErrInternal {
		return e.Message
	}
	return "internal error"
}
