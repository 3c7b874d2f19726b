package keyserver

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/candor-en/candor/api"
)

// Error is a publish failure with its API code. Status maps it to HTTP in
// one place.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Status returns the HTTP status of a publish error code.
func Status(code string) int {
	switch code {
	case "":
		return http.StatusOK
	case api.CodePartialFailure:
		return http.StatusOK
	case api.CodeUnknownHealthAuthorityID, api.CodeCertificateInvalid:
		return http.StatusUnauthorized
	case api.CodeInternalError, api.CodeUnableToLoadHealthAuthority:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the API code of err: the code of an *Error, or
// internal_error for anything else.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return api.CodeInternalError
}
