package api

import (
	"errors"
	"fmt"
	"time"
)

// Error is a request a service refused, with its error code: one of the
// publish API's Code* constants or of the verification APIs' Err*
// constants, as the answer's "code" or "errorCode" field carries it. Each
// service maps the codes to HTTP statuses next to its handlers.
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

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, or otherwise when
// there is none (each API names its own internal-error code).
func ErrorCode(err error, otherwise string) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return otherwise
}
