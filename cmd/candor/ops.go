package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/internal/operator"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/storage/bolt"
)

// invalidateAuthorities makes the key server (when this process runs it)
// read authorities and apps afresh; other replicas see changes when their
// cache entries expire.
func (m *Main) invalidateAuthorities() {
	if m.Publisher != nil {
		m.Publisher.InvalidateCache()
	}
}

// Operator commands reach a running server through a Unix socket in the data
// directory (its 0600 permissions are the authentication, as only the
// server's user can open it); with the server stopped they open the store
// directly. Both paths run the same operation functions below.

// AdminSocketName is the operator socket's file name in the data directory.
const AdminSocketName = "admin.sock"

// operatorServices are the services of m the operator commands act on.
func (m *Main) operatorServices() *operator.Services {
	s := &operator.Services{
		Now:                m.Config.now,
		Authorities:        m.Authorities,
		AuthoritiesChanged: m.invalidateAuthorities,
		Verification:       m.Verification,
		TrustRealm:         m.trustRealm,
		PublicURL:          m.publicURL(),
		Accounts:           m.Accounts,
		ExportStore:        m.ExportStore,
		ExportKeys:         m.ExportKeys,
		Exporter:           m.Exporter,
	}
	if m.http == nil { // no server: this process decides the retention
		s.ExporterFor = func(d time.Duration) (*exporter.Exporter, error) { return m.newExporter(d, false) }
	}
	return s
}

// registerOps serves the operator commands on e (the admin socket's server).
func registerOps(e *echo.Echo, m *Main) {
	operator.Register(e, m.operatorServices, func(role string) error {
		if m.runs(role) {
			return nil
		}
		return fmt.Errorf("this server does not run the %s role (--roles %s); ask one that does", role, strings.Join(m.roles, ","))
	})
}

// opTarget is where operator commands go: the server running on a data
// directory, or with none running, the store it uses.
type opTarget struct {
	dataDir   string
	store     string
	masterKey string
}

// targetFlags registers --data and --store on fs.
func targetFlags(fs *flag.FlagSet) *opTarget {
	t := &opTarget{}
	fs.StringVar(&t.dataDir, "data", DefaultDataDir, "data directory of the server (its operator socket, or with no server running its store and keys)")
	fs.StringVar(&t.store, "store", DefaultStore, "store the server uses, opened directly when no server runs: bolt or a Redis URL (see candor serve --help)")
	fs.StringVar(&t.masterKey, "master-key", "", "with no server running: the master key file of the store's keysets (default <data>/master.key)")
	return t
}

// call runs operation name on the target; see callOp.
func (t *opTarget) call(ctx context.Context, name string, req, resp any) error {
	return callOpStore(ctx, t.dataDir, t.store, t.masterKey, name, req, resp)
}

// callOp runs operation name with req against the server running on
// dataDir, or directly on its store when no server runs (the store named by
// CANDOR_STORE, else the embedded one), and decodes the result into resp.
func callOp(ctx context.Context, dataDir, name string, req, resp any) error {
	return callOpStore(ctx, dataDir, os.Getenv(envName("store")), os.Getenv(envName("master-key")), name, req, resp)
}

// callOpStore is callOp with the store and master key to open when no
// server runs.
func callOpStore(ctx context.Context, dataDir, store, masterKey, name string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	sock := filepath.Join(dataDir, AdminSocketName)
	out, err := operator.Call(ctx, sock, name, body)
	if errors.Is(err, operator.ErrNoServer) {
		out, err = callDirect(ctx, dataDir, store, masterKey, name, body)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(out, resp)
}

func callDirect(ctx context.Context, dataDir, store, masterKey, name string, body []byte) ([]byte, error) {
	cfg := Config{DataDir: dataDir, MasterKeyFile: masterKey, LogLevel: "warn", LogFormat: "text"}
	cfg.Store = store
	// A command run before any server creates the log: with the origin the
	// server would give it.
	cfg.PublicURL, cfg.TlogOrigin = os.Getenv(envName("public-url")), os.Getenv(envName("tlog-origin"))
	if store != "" && store != DefaultStore {
		// The log of a shared store is the log process's: events of this
		// command reach it through the outbox.
		cfg.Roles = strings.Join([]string{RoleKeyServer, RoleVerification, RoleExporter}, ",")
	}
	m, err := NewMain(cfg, io.Discard)
	if err != nil {
		return nil, err
	}
	if err := m.OpenServices(ctx); err != nil {
		if errors.Is(err, bolt.ErrLocked) {
			return nil, fmt.Errorf("%w; a server holds the store but its admin socket %s does not answer", err, filepath.Join(dataDir, AdminSocketName))
		}
		return nil, err
	}
	defer m.Close()
	res, err := operator.Run(ctx, m.operatorServices(), name, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}
