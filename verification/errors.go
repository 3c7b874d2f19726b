package verification

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/candor-en/candor/api"
)

// Error is a refused request with its API error code (api.Err*). Status maps
// the code to HTTP in one place.
type Error struct {
	Code    string
	Message string
	Err     error
	// RetryAfter, for rate_limited, is when an attempt is possible again.
	RetryAfter time.Duration
}

// Error returns the code, message and cause.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func internal(msg string, err error) *Error {
	return &Error{Code: api.ErrInternal, Message: msg, Err: err}
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

// ErrorCode returns the API code of err: the code of an *Error, or
// internal_server_error for anything else.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return api.ErrInternal
}

// errorMessage is the text shown to clients for err: never an internal
// error's details.
func errorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != api.ErrInternal {
		return e.Message
	}
	return "internal error"
}
