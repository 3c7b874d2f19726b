package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/keyserver"
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

// opFunc is one operator command, run on the running server's Main or on
// one opened with OpenServices when no server runs.
type opFunc func(ctx context.Context, m *Main, req json.RawMessage) (any, error)

// opError is an operation refused for a reason the operator can fix.
type opError struct{ msg string }

func (e opError) Error() string { return e.msg }

func opTable() map[string]opFunc {
	t := map[string]opFunc{
		"authority.add": opAuthorityAdd,
		"app.add":       opAppAdd,
	}
	maps.Copy(t, verificationOps())
	maps.Copy(t, uiOps())
	maps.Copy(t, exportOps())
	return t
}

type authorityAddRequest struct {
	Issuer       string `json:"issuer"`
	Audience     string `json:"audience"`
	Name         string `json:"name,omitempty"`
	JWKSURL      string `json:"jwksURL,omitempty"`
	KeyVersion   string `json:"keyVersion,omitempty"`
	PublicKeyPEM string `json:"publicKeyPEM,omitempty"`
}

type authorityAddResponse struct {
	Issuer  string `json:"issuer"`
	Created bool   `json:"created"`
	Keys    int    `json:"keys"`
}

func opAuthorityAdd(ctx context.Context, m *Main, raw json.RawMessage) (any, error) {
	var req authorityAddRequest
	if err := web.UnmarshalStrict(raw, &req); err != nil {
		return nil, opError{err.Error()}
	}
	if req.Issuer == "" || req.Audience == "" {
		return nil, opError{"--issuer and --audience are required"}
	}
	if req.PublicKeyPEM == "" && req.JWKSURL == "" {
		return nil, opError{"give --public-key with --key-version, or --jwks-url"}
	}
	var key *keyserver.AuthorityKey
	if req.PublicKeyPEM != "" {
		if req.KeyVersion == "" {
			return nil, opError{"--key-version is required with --public-key"}
		}
		if _, err := api.ParsePublicKeyPEM(req.PublicKeyPEM); err != nil {
			return nil, opError{err.Error()}
		}
		key = &keyserver.AuthorityKey{Version: req.KeyVersion, PEM: req.PublicKeyPEM}
	}
	ha, created, err := keyserver.AddAuthority(ctx, m.Authorities, keyserver.HealthAuthority{
		Issuer: req.Issuer, Audience: req.Audience, Name: req.Name, JWKSURL: req.JWKSURL,
	}, key, m.Config.now())
	if err != nil {
		return nil, opError{err.Error()}
	}
	m.invalidateAuthorities()
	return authorityAddResponse{Issuer: ha.Issuer, Created: created, Keys: len(ha.Keys)}, nil
}

type appAddRequest struct {
	ID        string `json:"id"`
	Authority string `json:"authority"`
	Region    string `json:"region"`
}

func opAppAdd(ctx context.Context, m *Main, raw json.RawMessage) (any, error) {
	var req appAddRequest
	if err := web.UnmarshalStrict(raw, &req); err != nil {
		return nil, opError{err.Error()}
	}
	if req.ID == "" || req.Authority == "" {
		return nil, opError{"--id and --authority are required"}
	}
	app, err := keyserver.AddApp(ctx, m.Authorities, req.ID, req.Authority, req.Region)
	if err != nil {
		return nil, opError{err.Error()}
	}
	m.invalidateAuthorities()
	return app, nil
}

// registerOps serves the operation table on e (the admin socket's server).
func registerOps(e *echo.Echo, m *Main) {
	table := opTable()
	e.POST("/ops/:name", func(c echo.Context) error {
		fn, ok := table[c.Param("name")]
		if !ok {
			return c.JSON(http.StatusNotFound, map[string]string{"error": "unknown operation " + c.Param("name")})
		}
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, 1<<20))
		if err != nil {
			return err
		}
		if role := opRole(c.Param("name")); role != "" && !m.runs(role) {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("this server does not run the %s role (--roles %s); ask one that does", role, strings.Join(m.roles, ","))})
		}
		res, err := fn(c.Request().Context(), m, body)
		if err != nil {
			var oe opError
			if errors.As(err, &oe) {
				return c.JSON(http.StatusBadRequest, map[string]string{"error": oe.msg})
			}
			return c.JSON(http.StatusInternalServerError, map[string]string{"error": err.Error()})
		}
		return c.JSON(http.StatusOK, res)
	})
}

// opRole is the role whose services operation name needs, or "" when any
// server can run it (authorities and apps live in the shared store).
func opRole(name string) string {
	switch {
	case strings.HasPrefix(name, "realm."), strings.HasPrefix(name, "apikey."):
		return RoleVerification
	case strings.HasPrefix(name, "export."):
		return RoleExporter
	}
	return ""
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
	out, err := callSocket(ctx, sock, name, body)
	if errors.Is(err, errNoServer) {
		out, err = callDirect(ctx, dataDir, store, masterKey, name, body)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(out, resp)
}

var errNoServer = errors.New("no server is running")

func callSocket(ctx context.Context, sock, name string, body []byte) ([]byte, error) {
	if _, err := os.Stat(sock); err != nil {
		return nil, errNoServer
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}, Timeout: 2 * time.Minute}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://candor/ops/"+name, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, errNoServer // a stale socket from a server that died
		}
		return nil, fmt.Errorf("admin socket %s: %w", sock, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(out, &e)
		return nil, fmt.Errorf("%s", e.Error)
	}
	return out, nil
}

func callDirect(ctx context.Context, dataDir, store, masterKey, name string, body []byte) ([]byte, error) {
	fn, ok := opTable()[name]
	if !ok {
		return nil, fmt.Errorf("unknown operation %s", name)
	}
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
	res, err := fn(ctx, m, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}
