package verification

import (
	"github.com/candor-en/candor/api"
)

// internal is an internal_server_error: its cause is logged, never shown.
func internal(msg string, err error) *api.Error {
	return &api.Error{Code: api.ErrInternal, Message: msg, Err: err}
}
