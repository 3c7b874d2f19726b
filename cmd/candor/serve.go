package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served on the operator socket only
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tink-crypto/tink-go/v2/tink"
	"k8s.io/klog/v2"

	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyset"
)

// Config is the configuration of `candor serve`. Every field has a flag and
// a CANDOR_* environment variable; `candor serve --help` prints them.
type Config struct {
	DataDir string
	Addr    string
	// MetricsAddr is where /metrics is served, apart from the public port:
	// counters of decoys and keys read before and after an upload would
	// tell an observer what it carried. Empty: no metrics listener.
	MetricsAddr   string
	MasterKeyFile string
	LogLevel      string
	LogFormat     string
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	// JWKSInterval is how often authorities' JWKS URLs are polled.
	JWKSInterval time.Duration
	// RevisionKeyRotation is how often the revision-token key rotates.
	RevisionKeyRotation time.Duration
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
	SharedConfig
	VerificationConfig
	ExportConfig
	TransparencyConfig
}

// Defaults of Config.
const (
	DefaultDataDir             = "./data"
	DefaultAddr                = "127.0.0.1:8080"
	DefaultMetricsAddr         = "127.0.0.1:9464"
	DefaultShutdownTimeout     = 30 * time.Second
	DefaultJWKSInterval        = 5 * time.Minute
	DefaultRevisionKeyRotation = 7 * 24 * time.Hour
)

func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data", DefaultDataDir, "data directory: the store, keys and export files")
	fs.StringVar(&c.Addr, "addr", DefaultAddr, "HTTP listen address host:port")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", DefaultMetricsAddr, "listen address host:port of /metrics (Prometheus), for the operator's scraper only: never the public port, never routed by the proxy (\"\": none)")
	fs.StringVar(&c.MasterKeyFile, "master-key", "", "master key file encrypting every keyset (default <data>/master.key, created 0600 on first start)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "how long in-flight requests may finish on SIGTERM")
	fs.DurationVar(&c.JWKSInterval, "jwks-interval", DefaultJWKSInterval, "how often authorities' JWKS URLs are polled")
	fs.DurationVar(&c.RevisionKeyRotation, "revision-key-rotation", DefaultRevisionKeyRotation, "how often the revision-token key rotates")
	c.sharedFlags(fs)
	c.verificationFlags(fs)
	c.exportFlags(fs)
	c.transparencyFlags(fs)
}

// Validate checks the flags that need no store or key, so that a mistake in
// them is reported before anything is opened or created; it also parses
// --trusted-proxies once for the request limiter.
func (c *Config) Validate() error {
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageError{fmt.Sprintf("--public-url %q: want http(s)://host[:port]", c.PublicURL)}
		}
	}
	if c.AppLink != "" && !strings.Contains(c.AppLink, "{code}") {
		return usageError{fmt.Sprintf("--app-link %q: must contain {code}", c.AppLink)}
	}
	c.trustedProxies = nil
	if c.TrustedProxies != "" {
		for _, cidr := range strings.Split(c.TrustedProxies, ",") {
			_, n, err := net.ParseCIDR(strings.TrimSpace(cidr))
			if err != nil {
				return usageError{fmt.Sprintf("--trusted-proxies: %v", err)}
			}
			c.trustedProxies = append(c.trustedProxies, n)
		}
	}
	return nil
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: %v", level, err)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: want text or json", format)}
}

// Main is the running system: the store, keys, services and HTTP servers
// that `candor serve` wires together. End-to-end tests run the real binary;
// in-process tests build a Main.
type Main struct {
	Config   Config
	Log      *slog.Logger
	Registry *prometheus.Registry

	// The stores (see store.go): DB is the backend, bbolt or Redis.
	storeParts
	Master    tink.AEAD
	Revision  *keyset.Ring
	Publisher *keyserver.Publisher

	// Each role keeps its parts in its own file.
	verificationParts
	uiParts
	exportParts
	transparencyParts

	http    *web.Server
	metrics *web.Server
	admin   *web.Server
	ready   readiness
	// newLog is set when this process created the transparency log, and
	// with it the log's permanent origin.
	newLog bool
	wg     sync.WaitGroup
}

// NewMain returns a Main for cfg logging to logOut.
func NewMain(cfg Config, logOut io.Writer) (*Main, error) {
	log, err := newLogger(logOut, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return nil, err
	}
	// Tessera logs through klog: its lines go through this logger, with its
	// level and format, not raw to stderr. klog's logger is a process
	// global that Tessera's goroutines read, so it is set once: a second
	// Main in the same process (operator commands in tests) must not write
	// it while an earlier log's goroutines still run.
	setKlogOnce.Do(func() { klog.SetSlogLogger(log) })
	return &Main{Config: cfg, Log: log}, nil
}

var setKlogOnce sync.Once

// Open opens the store and keys, builds the services and binds the
// listeners; Run then serves.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := m.OpenServices(ctx); err != nil {
		return err
	}
	e := web.NewEcho(m.Log, web.NewMetrics(m.Registry))
	if err := m.setupRequestLimits(e); err != nil {
		return err
	}
	e.GET("/health", m.health)
	e.GET("/ready", m.serveReady)
	if m.runs(RoleKeyServer) {
		keyserver.NewHandler(m.Publisher, m.Log, m.Registry).Register(e)
	}
	if m.runs(RoleVerification) {
		m.registerVerification(e)
		m.registerUI(e)
	}
	if m.runs(RoleExporter) {
		m.registerExports(e)
	}
	if m.runs(RoleLog) {
		m.registerTransparency(e)
	}

	if m.http, err = web.Listen(m.Config.Addr, e); err != nil {
		return err
	}
	if m.Config.MetricsAddr != "" {
		me := web.NewEcho(m.Log, nil)
		me.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})))
		if m.metrics, err = web.Listen(m.Config.MetricsAddr, me); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	return m.openAdminSocket()
}

// OpenServices opens the store and keys and builds the services, without
// listening: operator commands use it when no server runs.
func (m *Main) OpenServices(ctx context.Context) (err error) {
	cfg := &m.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	if cfg.MasterKeyFile == "" {
		cfg.MasterKeyFile = filepath.Join(cfg.DataDir, "master.key")
	}
	if m.roles, err = parseRoles(cfg.Roles); err != nil {
		return err
	}
	if err := m.openStore(ctx); err != nil {
		return err
	}
	if err := m.checkMasterKey(ctx); err != nil {
		return err
	}
	m.Master, err = keyset.OpenMasterFile(cfg.MasterKeyFile)
	if err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	m.Registry = prometheus.NewRegistry()
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// On a shared store, processes start one at a time: the first creates
	// the keysets and secrets, the others load them.
	return m.exclusive(ctx, startupLease, func() error { return m.openRoles(ctx) })
}

// openRoles builds the services of the roles this process runs.
func (m *Main) openRoles(ctx context.Context) (err error) {
	cfg := &m.Config
	if err := m.openOutbox(ctx); err != nil {
		return err
	}
	if m.runs(RoleKeyServer) {
		// Revision tokens must open for as long as their keys can be
		// revised: keys are accepted for 15 days, so retired keys are kept
		// that long.
		m.Revision, err = keyset.Open(ctx, m.Keysets, m.Master, "keyserver/revision-token", keyset.PurposeAEAD, keyset.Options{
			RotateAfter: cfg.RevisionKeyRotation,
			RetainFor:   keyserver.DefaultMaxIntervalAge + 24*time.Hour,
			Now:         cfg.now,
		})
		if err != nil {
			return fmt.Errorf("revision keys: %w", err)
		}
		m.Publisher = keyserver.NewPublisher(m.Exposures, m.Authorities, m.Revision, keyserver.PublishOptions{
			RevisionTokenMaxAge: keyserver.DefaultMaxIntervalAge,
			Now:                 cfg.now,
		})
	}
	// The log opens first: the other roles record their data use in it.
	if m.runs(RoleLog) {
		if err := m.openTransparency(ctx); err != nil {
			return err
		}
	}
	if m.runs(RoleVerification) {
		if err := m.openVerification(ctx); err != nil {
			return err
		}
		if err := m.openUI(ctx); err != nil {
			return err
		}
	}
	if m.runs(RoleExporter) {
		return m.openExports(ctx)
	}
	return nil
}

func (m *Main) openAdminSocket() error {
	sock := filepath.Join(m.Config.DataDir, AdminSocketName)
	if m.shared() {
		if err := checkSocketFree(m.Config.DataDir); err != nil {
			return err
		}
	}
	_ = os.Remove(sock) // a stale socket of a previous run; the store lock (or checkSocketFree) proves none runs now
	// The socket appears with the mode the umask gives it: the data
	// directory, which OpenServices checked is its owner's alone, keeps
	// others out until the chmod below.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	e := web.NewEcho(m.Log, nil)
	registerOps(e, m)
	// Profiles only through the operator socket: never on the public port.
	e.GET("/debug/pprof/*", echo.WrapHandler(http.DefaultServeMux))
	m.admin = web.Serve(ln, e)
	return nil
}

// health answers liveness: the process serves HTTP. Whether it can serve
// its roles now is /ready.
func (m *Main) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// checkDataDir refuses a data directory that other users can enter: it
// holds the store, the master key by default, the operator socket (whose
// only authentication is that nobody else can reach it) and the log.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("data dir %s has mode %04o: other users can reach the store, keys and operator socket in it; run `chmod 700 %s` as its owner (Candor creates a new data directory 0700)", dir, perm, dir)
	}
	return nil
}

// originSource says where a new log's origin came from.
func originSource(cfg Config) string {
	switch {
	case cfg.TlogOrigin != "":
		return "--tlog-origin"
	case cfg.PublicURL != "":
		return "the host of --public-url"
	}
	return "no --public-url was given: a public deployment sets it before its first start"
}

// URL is the base URL of the HTTP server.
func (m *Main) URL() string { return "http://" + m.http.Addr().String() }

// Run serves until ctx is cancelled, then shuts down gracefully: in-flight
// requests finish, background work stops, the store closes.
func (m *Main) Run(ctx context.Context) error {
	servers := []*web.Server{m.http, m.admin}
	if m.metrics != nil {
		servers = append(servers, m.metrics)
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.Run() }()
	}
	m.background(ctx)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	m.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	err := runErr
	for _, s := range servers {
		err = errors.Join(err, s.Shutdown(sctx))
	}
	m.wg.Wait()
	return err
}

// background starts the periodic jobs: key rotation, JWKS polling, and the
// roles' own jobs.
func (m *Main) background(ctx context.Context) {
	if m.runs(RoleVerification) {
		m.verificationBackground(ctx)
		m.uiBackground(ctx)
	}
	if m.runs(RoleExporter) {
		m.exportBackground(ctx)
	}
	if m.runs(RoleLog) {
		m.transparencyBackground(ctx)
		m.watchCheckpoint(ctx)
	}
	m.outboxBackground(ctx)
	if !m.runs(RoleKeyServer) {
		return
	}
	m.every(ctx, m.keyMaintenanceInterval(time.Hour), "revision key maintenance", func(ctx context.Context) error {
		return m.exclusive(ctx, "keyserver/revision-token", func() error {
			_, _, err := m.Revision.Maintain(ctx)
			return err
		})
	})
	client := &http.Client{Timeout: 30 * time.Second}
	m.every(ctx, m.Config.JWKSInterval, "jwks sync", func(ctx context.Context) error {
		changed, err := keyserver.SyncJWKS(ctx, m.Authorities, client, m.Config.now())
		if len(changed) > 0 {
			m.Publisher.InvalidateCache()
			m.Log.Info("jwks keys changed", "issuers", strings.Join(changed, ","))
		}
		return err
	})
}

// every runs fn now and then every interval until ctx ends.
func (m *Main) every(ctx context.Context, interval time.Duration, name string, fn func(context.Context) error) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				m.Log.Warn(name+" failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close releases the store; safe after a failed Open.
func (m *Main) Close() error {
	// The log first: its last checkpoint is published before the store goes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m.closeTransparency(ctx)
	if m.DB != nil {
		err = errors.Join(err, m.DB.Close())
		m.DB = nil
		if m.admin != nil {
			_ = os.Remove(filepath.Join(m.Config.DataDir, AdminSocketName))
		}
	}
	return err
}

func runServe(ctx context.Context, args []string, io IO) error {
	var cfg Config
	fs := newFlagSet("serve [flags]", "Run Candor: every role (key server, verification, exporter, transparency log) and /health, /ready on one port, /metrics on --metrics-addr, with embedded storage in --data. To scale out, share state in Redis (--store) and run roles separately (--roles); see docs/SCALING.md.", io.Err)
	cfg.flags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, err := NewMain(cfg, io.Err)
	if err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer m.Close()
	err = m.exclusive(ctx, startupLease, func() error {
		if m.runs(RoleVerification) {
			if err := m.ensureDemoRealm(ctx, io.Out); err != nil {
				return err
			}
			if err := m.ensureFirstAdmin(ctx, io.Out); err != nil {
				return err
			}
		}
		if m.runs(RoleExporter) {
			return m.ensureDemoExport(ctx, io.Out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if m.newLog {
		fmt.Fprintf(io.Out, "First start: created the transparency log with the origin %s (%s); it names the log for good.\n", m.DataLog.Origin(), originSource(m.Config))
	}
	u := m.URL()
	fmt.Fprintf(io.Out, "Candor is running (data in %s, store %s, roles %s)\n", m.Config.DataDir, m.storeName(), strings.Join(m.roles, ","))
	fmt.Fprintf(io.Out, "  key server publish:    %s/v1/publish\n", u)
	fmt.Fprintf(io.Out, "  verification API:      %s/api/verify, /api/certificate, /api/issue …\n", u)
	fmt.Fprintf(io.Out, "  realm public keys:     %s/jwks/{realm}\n", u)
	fmt.Fprintf(io.Out, "  export files:          %s/exports/{root}/index.txt\n", u)
	fmt.Fprintf(io.Out, "  transparency log:      %s/log/checkpoint\n", u)
	fmt.Fprintf(io.Out, "  transparency page:     %s/transparency\n", u)
	fmt.Fprintf(io.Out, "  health-worker UI:      %s/ui/\n", u)
	fmt.Fprintf(io.Out, "  health, readiness:     %s/health, %s/ready\n", u, u)
	if m.metrics != nil {
		fmt.Fprintf(io.Out, "  metrics (operator):    http://%s/metrics\n", m.metrics.Addr())
	}
	fmt.Fprintf(io.Out, "  operator socket:       %s\n", filepath.Join(m.Config.DataDir, AdminSocketName))
	return m.Run(ctx)
}
