// Package operator holds the operator's commands on a Candor server: adding
// authorities, apps, realms, API keys, accounts and export configurations,
// and running an export pass.
//
// Each operation is a typed request, whose Validate refuses what the
// operator can fix before anything is read, and a typed response. The same
// operation runs on a running server (through its operator socket, see
// Register and Call) and, with no server running, on a process that opened
// the store itself: both build Services and call Run.
package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// Error is an operation refused for a reason the operator can fix; its text
// is shown to the operator as it is.
type Error string

func (e Error) Error() string { return string(e) }

// Request is an operation's request.
type Request interface {
	// Validate returns an Error when the request cannot succeed as given.
	Validate() error
}

// Services are what the operations act on. A role's fields are nil when the
// process does not run the role; Role says which operations need which.
type Services struct {
	// Now is the server's clock.
	Now func() time.Time

	// Authorities holds the key server's health authorities and apps.
	Authorities keyserver.AuthorityStore
	// AuthoritiesChanged is called after an authority or app changed, so
	// the key server of this process reads them afresh.
	AuthoritiesChanged func()

	// Verification is the verification service.
	Verification *verification.Service
	// TrustRealm registers a realm with the built-in key server.
	TrustRealm func(context.Context, *verification.Realm) error
	// PublicURL is the server's public base URL, without a trailing slash.
	PublicURL string
	// Accounts holds the web UI's accounts.
	Accounts *account.Service

	// ExportStore holds the export configurations.
	ExportStore exporter.Store
	// ExportKeys holds the export signing keys.
	ExportKeys *exporter.Keysets
	// Exporter runs export passes.
	Exporter *exporter.Exporter
	// ExporterFor returns an exporter keeping keys and files for
	// retention. It is set only when no server runs: a running server
	// keeps its own retention.
	ExporterFor func(retention time.Duration) (*exporter.Exporter, error)
}

// Func is an operation on decoded JSON, as the socket carries it.
type Func func(ctx context.Context, s *Services, req json.RawMessage) (any, error)

// op adapts a typed operation to a Func: it decodes the request strictly
// and validates it before calling fn.
func op[Req Request, Resp any](fn func(*Services, context.Context, Req) (Resp, error)) Func {
	return func(ctx context.Context, s *Services, raw json.RawMessage) (any, error) {
		var req Req
		if err := web.UnmarshalStrict(raw, &req); err != nil {
			return nil, Error(err.Error())
		}
		if err := req.Validate(); err != nil {
			return nil, err
		}
		return fn(s, ctx, req)
	}
}

// operations are the operations by name.
var operations = map[string]Func{
	"authority.add": op((*Services).AddAuthority),
	"app.add":       op((*Services).AddApp),

	"realm.add":        op((*Services).AddRealm),
	"realm.set":        op((*Services).SetRealm),
	"realm.list":       op((*Services).ListRealms),
	"realm.rotate-key": op((*Services).RotateRealmKey),
	"realm.stats":      op((*Services).RealmStats),
	"apikey.add":       op((*Services).AddAPIKey),
	"apikey.list":      op((*Services).ListAPIKeys),
	"apikey.revoke":    op((*Services).RevokeAPIKey),

	"user.add":            op((*Services).AddUser),
	"user.list":           op((*Services).ListUsers),
	"user.reset-password": op((*Services).ResetPassword),
	"user.disable":        op((*Services).SetDisabled),
	"user.enable":         op((*Services).SetDisabled),

	"export.add":        op((*Services).AddExport),
	"export.list":       op((*Services).ListExports),
	"export.key.add":    op((*Services).AddExportKey),
	"export.key.retire": op((*Services).RetireExportKey),
	"export.keys":       op((*Services).ExportKeysOf),
	"export.run":        op((*Services).RunExport),
}

// ErrUnknown is returned by Run for an operation name it does not know.
var ErrUnknown = errors.New("unknown operation")

// Run runs operation name with the JSON request req on s.
func Run(ctx context.Context, s *Services, name string, req json.RawMessage) (any, error) {
	fn, ok := operations[name]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknown, name)
	}
	// The services record the admin actions as the operator's.
	return fn(verification.NewContextWithActor(ctx, account.Operator()), s, req)
}

// Role is the server role (as --roles names it) whose services operation
// name needs, or "" when any server can run it: authorities, apps and
// accounts live in the shared store.
func Role(name string) string {
	switch {
	case strings.HasPrefix(name, "realm."), strings.HasPrefix(name, "apikey."):
		return "verification"
	case strings.HasPrefix(name, "export."):
		return "exporter"
	}
	return ""
}

// Empty is the request of an operation that takes no arguments.
type Empty struct{}

// Validate accepts every Empty.
func (Empty) Validate() error { return nil }
