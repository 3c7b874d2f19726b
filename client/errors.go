package client

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/candor-en/candor/api"
)

// APIError is a request the server refused. Find it with errors.As:
//
//	var apiErr *client.APIError
//	if errors.As(err, &apiErr) && apiErr.Code == api.ErrVerifyCodeExpired { … }
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the API's error code: one of the api.Err* constants on
	// /api/*, one of the api.Code* constants on /v1/publish, or empty when
	// the server gave none (e.g. 404 from a proxy).
	Code string
	// Message is the server's own message, in English.
	Message string
	// RetryAfter is the server's Retry-After, when it sent one (rate
	// limiting): do not retry sooner.
	RetryAfter time.Duration
}

// Error returns Explain's sentence for the code followed by the code, the
// status and the server's message.
func (e *APIError) Error() string {
	s := fmt.Sprintf("%s (", e.Explain())
	if e.Code != "" {
		s += e.Code + ", "
	}
	s += fmt.Sprintf("HTTP %d", e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	s += ")"
	if e.RetryAfter > 0 {
		s += fmt.Sprintf("; retry after %v", e.RetryAfter)
	}
	return s
}

// Explain returns a sentence a person can act on for the error's code, or
// for its status when the code is unknown.
func (e *APIError) Explain() string {
	if m := Explain(e.Code); m != "" {
		return m
	}
	switch {
	case e.Status == http.StatusNotFound:
		return "the server has no such endpoint or file; check the server URL and that the role serving it runs"
	case e.Status == http.StatusUnsupportedMediaType:
		return "the server refused the request's content type"
	case e.Status == http.StatusRequestEntityTooLarge:
		return "the request is too large for the server"
	case e.Status == http.StatusTooManyRequests:
		return "the server is overloaded or rate limiting; try again later"
	case e.Status >= 500:
		return "the server failed; try again later"
	}
	return "the server refused the request"
}

// explanations returns Explain's sentences by error code. Publish and
// verification codes never share a name.
func explanations() map[string]string {
	return map[string]string{
		// Key server, /v1/publish.
		api.CodeUnknownHealthAuthorityID:    "the key server does not know this app's healthAuthorityID; check the app's configuration or ask the operator to add the app",
		api.CodeUnableToLoadHealthAuthority: "the key server could not load the app's configuration; try again later",
		api.CodeCertificateInvalid:          "the key server refused the verification certificate: it expired, was issued for other keys, or its health authority is not trusted for this app; verify a new code",
		api.CodeBadRequest:                  "the key server could not read the upload, or none of its keys was valid",
		api.CodeInternalError:               "the key server failed; try again later",
		api.CodeMissingRevisionToken:        "these keys were uploaded before; changing them needs the revision token of that upload",
		api.CodeInvalidRevisionToken:        "the revision token is damaged, expired, or does not cover these keys",
		api.CodeKeyAlreadyRevised:           "these keys were already revised once and cannot be changed again",
		api.CodeInvalidReportTypeTransition: "this test result cannot replace the earlier one (only likely or self-reported results can be revised)",
		api.CodePartialFailure:              "some keys were invalid and dropped; the others were uploaded",

		// Verification service, /api/*.
		api.ErrUnparsableRequest:   "the verification server could not read the request",
		api.ErrInternal:            "the verification server failed; try again later",
		api.ErrUnauthorized:        "the API key is missing, unknown, revoked, or of the wrong kind (device keys verify codes, admin keys issue them)",
		api.ErrRateLimited:         "too many requests or wrong codes from this address, or with this app's API key; wait before trying again",
		api.ErrVerifyCodeInvalid:   "the verification code is wrong or was already used; check it, or ask for a new one",
		api.ErrVerifyCodeExpired:   "the verification code has expired; ask the health authority for a new one",
		api.ErrVerifyCodeNotFound:  "no code with this UUID exists in the realm",
		api.ErrUnsupportedTestType: "the code is for a test type this app does not accept (or the realm does not issue); the app may need an update",
		api.ErrInvalidTestType:     "a test type is not one of confirmed, likely, negative, user-report",
		api.ErrMissingDate:         "the realm requires a symptom or test date",
		api.ErrInvalidDate:         "a date is in the future or too long ago",
		api.ErrUUIDAlreadyExists:   "a code with this UUID was already issued (a retry of an earlier request)",
		api.ErrMaintenanceMode:     "the health authority's verification service is in maintenance; try again later",
		api.ErrQuotaExceeded:       "the health authority issued its daily quota of codes; try again tomorrow",
		api.ErrTokenInvalid:        "the verification token is malformed, forged, or from another health authority",
		api.ErrTokenExpired:        "the verification token expired or was already used; verify a new code",
		api.ErrHMACInvalid:         "the key HMAC (ekeyhmac) is not standard base64 of 32 bytes",
	}
}

// Explain returns a sentence a person can act on for a server error code of
// the publish, device or admin API, or "" for a code it does not know.
func Explain(code string) string { return explanations()[code] }

// ErrorCodes returns every code Explain knows.
func ErrorCodes() []string {
	return slices.Sorted(maps.Keys(explanations()))
}
