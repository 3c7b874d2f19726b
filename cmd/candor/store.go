package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/lease"
	"github.com/candor-en/candor/internal/outbox"
	"github.com/candor-en/candor/internal/ratelimit"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// SharedConfig is how replicas share state: the store, the roles this
// process runs, and the request rate limits.
type SharedConfig struct {
	// Store is "bolt" (embedded, in the data directory) or a Redis URL:
	// redis://host:port[/db], rediss://…, redis+cluster://h1:p1,h2:p2,
	// redis+sentinel://s1:p1,s2:p2/master.
	Store string
	// Roles are the roles this process runs: "all", or a comma-separated
	// subset of keyserver, verification, exporter, log.
	Roles string
	// RedisWaitReplicas makes every acknowledged write wait until that many
	// Redis replicas have it (WAIT).
	RedisWaitReplicas int
	// TrustedProxies are the CIDRs of reverse proxies whose
	// X-Forwarded-For names the client; empty: the peer address is the
	// client's.
	TrustedProxies string
	// trustedProxies is TrustedProxies parsed by Config.Validate.
	trustedProxies []*net.IPNet
	// RateLimitWindow and the RateLimitPer* bounds: requests per window per
	// client address (publish, device APIs), device API key and admin API
	// key; 0 disables a bound.
	RateLimitWindow       time.Duration
	RateLimitPerAddress   int
	RateLimitPerDeviceKey int
	RateLimitPerAdminKey  int
}

// Defaults of SharedConfig.
const (
	DefaultStore                 = "bolt"
	DefaultRoles                 = "all"
	DefaultRateLimitWindow       = time.Minute
	DefaultRateLimitPerAddress   = 1200
	DefaultRateLimitPerDeviceKey = 120000
	DefaultRateLimitPerAdminKey  = 6000
)

func (c *SharedConfig) sharedFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Store, "store", DefaultStore, "where state lives: bolt (embedded in --data) or a Redis URL shared by replicas: redis://host:port[/db], rediss://…, redis+cluster://h1:p1,h2:p2, redis+sentinel://s1:p1,s2:p2/master")
	fs.StringVar(&c.Roles, "roles", DefaultRoles, "roles this process runs: all, or a comma-separated subset of keyserver, verification, exporter, log (run exporter and log in one process each)")
	fs.IntVar(&c.RedisWaitReplicas, "redis-wait-replicas", 0, "with Redis: acknowledge a write only once this many Redis replicas have it (WAIT); see deploy/redis/redis.conf")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (default: none, the peer is the client)")
	fs.DurationVar(&c.RateLimitWindow, "rate-limit-window", DefaultRateLimitWindow, "window of the request rate limits")
	fs.IntVar(&c.RateLimitPerAddress, "rate-limit-per-address", DefaultRateLimitPerAddress, "requests per window from one client address to /v1/publish and the device APIs (0: no bound)")
	fs.IntVar(&c.RateLimitPerDeviceKey, "rate-limit-per-device-key", DefaultRateLimitPerDeviceKey, "requests per window with one device API key, all app installs together (0: no bound)")
	fs.IntVar(&c.RateLimitPerAdminKey, "rate-limit-per-admin-key", DefaultRateLimitPerAdminKey, "requests per window with one admin API key (0: no bound)")
}

// Roles.
const (
	RoleKeyServer    = "keyserver"
	RoleVerification = "verification"
	RoleExporter     = "exporter"
	RoleLog          = "log"
)

var allRoles = []string{RoleKeyServer, RoleVerification, RoleExporter, RoleLog}

// parseRoles parses --roles.
func parseRoles(s string) ([]string, error) {
	if s == "" || s == DefaultRoles {
		return slices.Clone(allRoles), nil
	}
	var out []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(allRoles, r) {
			return nil, usageError{fmt.Sprintf("--roles: unknown role %q (want all, or some of %s)", r, strings.Join(allRoles, ", "))}
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, usageError{"--roles: no role"}
	}
	return out, nil
}

// Backend is a store backend: every store interface the roles use, on one
// connection that Close releases. *bolt.DB and *redis.Store implement it.
type Backend interface {
	keyserver.ExposureStore
	keyserver.AuthorityStore
	keyset.Store
	exporter.Store
	Close() error
}

var (
	_ Backend = (*bolt.DB)(nil)
	_ Backend = (*redis.Store)(nil)
)

// storeParts are the stores of Main, opened from one backend.
type storeParts struct {
	// DB is the backend OpenServices opened: bbolt in the data directory or
	// Redis (--store). Roles use the typed stores below; DB remains for
	// code that has not moved to them.
	DB Backend
	// The stores of the roles, all on DB.
	Exposures         keyserver.ExposureStore
	Authorities       keyserver.AuthorityStore
	Keysets           keyset.Store
	VerificationStore verification.Store
	ExportStore       exporter.Store
	AccountStore      account.Store
	// Leases serialize work between processes on a shared store.
	Leases lease.Store
	// Redis is the backend when it is Redis (nil for bbolt): state shared
	// by replicas.
	Redis *redis.Store

	roles       []string
	rateLimiter *ratelimit.Limiter
	// dataUse carries data-use events to the log process (outbox.go).
	dataUse outbox.Queue
}

// useBolt makes db the backend.
func (m *Main) useBolt(db *bolt.DB) {
	m.setBackend(db)
	m.VerificationStore = bolt.NewVerificationStore(db)
	m.AccountStore = bolt.NewAccountStore(db)
}

// useRedis makes s the backend.
func (m *Main) useRedis(s *redis.Store) {
	m.setBackend(s)
	m.Redis = s
	m.VerificationStore = redis.NewVerificationStore(s)
	m.AccountStore = redis.NewAccountStore(s)
}

func (m *Main) setBackend(b Backend) {
	m.DB, m.Exposures, m.Authorities, m.Keysets, m.ExportStore, m.Leases = b, b, b, b, b, b
}

// shared reports whether the state is shared with other processes (Redis).
func (m *Main) shared() bool { return m.Redis != nil }

// runs reports whether this process runs role.
func (m *Main) runs(role string) bool {
	if m.roles == nil {
		return true
	}
	return slices.Contains(m.roles, role)
}

// openStore opens the backend that --store names.
func (m *Main) openStore(ctx context.Context) error {
	cfg := &m.Config
	switch s := cfg.Store; {
	case s == "" || s == DefaultStore:
		db, err := bolt.Open(cfg.DataDir, bolt.Options{})
		if err != nil {
			return err
		}
		m.useBolt(db)
	case strings.HasPrefix(s, "redis"):
		var opts []redis.Option
		if cfg.RedisWaitReplicas > 0 {
			opts = append(opts, redis.WithWaitReplicas(cfg.RedisWaitReplicas))
		}
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rs, err := redis.Open(octx, s, opts...)
		if err != nil {
			return fmt.Errorf("--store: %w", err)
		}
		m.useRedis(rs)
	default:
		return usageError{fmt.Sprintf("--store %q: want bolt or a redis://, rediss://, redis+cluster:// or redis+sentinel:// URL", s)}
	}
	return nil
}

// startupLease names the lease that serializes the start of processes on
// one shared store, so that keysets and secrets are created once.
const startupLease = "candor/startup"

// exclusive runs fn while holding the lease name on the shared store,
// waiting for it up to a minute; on an embedded store the file lock already
// makes this process the only one, and fn just runs. Keysets have no
// compare-and-swap (see package keyset), so every keyset creation and
// rotation on a shared store runs in here.
func (m *Main) exclusive(ctx context.Context, name string, fn func() error) error {
	if !m.shared() {
		return fn()
	}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%p", host, os.Getpid(), m)
	const ttl = 2 * time.Minute
	deadline := time.Now().Add(time.Minute)
	for {
		// The lease works on the wall clock whatever Config.Now says: it
		// orders real processes.
		err := m.Leases.AcquireLease(ctx, name, owner, time.Now(), ttl)
		if err == nil {
			break
		}
		if !errors.Is(err, lease.ErrHeld) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer m.Leases.ReleaseLease(context.WithoutCancel(ctx), name, owner)
	return fn()
}

// keyMaintenanceInterval is how often keysets are checked for rotation: on
// a shared store every minute, so that a rotation made by one replica
// reaches the others soon (the check reloads the stored ring).
func (m *Main) keyMaintenanceInterval(embedded time.Duration) time.Duration {
	if m.shared() {
		return time.Minute
	}
	return embedded
}

// failureLimiter bounds failed code redemptions (burst at once, one more
// every interval) per client or per API key: shared through Redis, or in
// memory.
func (m *Main) failureLimiter(burst int, interval time.Duration) verification.FailureLimiter {
	if m.shared() {
		return redis.NewFailureLimiter(m.Redis, burst, interval, m.Config.now)
	}
	return verification.NewAttemptLimiter(burst, interval, m.Config.now)
}

// setupRequestLimits configures how e finds client addresses and bounds
// requests per address and API key: counted in Redis when the store is
// shared, else in memory.
func (m *Main) setupRequestLimits(e *echo.Echo) error {
	cfg := m.Config.SharedConfig
	if len(cfg.trustedProxies) == 0 {
		e.IPExtractor = echo.ExtractIPDirect()
	} else {
		// Only the proxies given: not every private network.
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.trustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	var counter ratelimit.Counter = ratelimit.NewMemoryCounter()
	var secrets ratelimit.Secrets = ratelimit.NewMemorySecrets()
	if m.shared() {
		counter, secrets = redis.NewRateCounter(m.Redis), redis.NewRateSecrets(m.Redis)
	}
	denied := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "candor_ratelimit_denied_total",
		Help: "Requests refused with 429 by a rate limit, by rule.",
	}, []string{"rule"})
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "candor_ratelimit_errors_total",
		Help: "Requests let through because the rate limit could not be counted (store unreachable).",
	})
	if err := m.Registry.Register(denied); err != nil {
		return err
	}
	if err := m.Registry.Register(failures); err != nil {
		return err
	}
	m.rateLimiter = ratelimit.New(counter, secrets, ratelimit.Options{
		Now: m.Config.now,
		OnError: func(err error) {
			failures.Inc()
			m.Log.Warn("rate limit not counted", "err", err)
		},
	})
	w := cfg.RateLimitWindow
	address := ratelimit.Rule{Name: "address", Limit: cfg.RateLimitPerAddress, Window: w, Key: ratelimit.AddressKey}
	device := ratelimit.Rule{Name: "device-key", Limit: cfg.RateLimitPerDeviceKey, Window: w, Key: ratelimit.HeaderKey(api.APIKeyHeader)}
	admin := ratelimit.Rule{Name: "admin-key", Limit: cfg.RateLimitPerAdminKey, Window: w, Key: ratelimit.HeaderKey(api.APIKeyHeader)}
	routes := map[string][]ratelimit.Rule{
		api.PublishPath:         {address},
		api.VerifyPath:          {device, address},
		api.CertificatePath:     {device, address},
		api.IssuePath:           {admin},
		api.BatchIssuePath:      {admin},
		api.CheckCodeStatusPath: {admin},
		api.ExpireCodePath:      {admin},
	}
	deny := func(c echo.Context, r ratelimit.Result) error {
		denied.WithLabelValues(r.Rule).Inc()
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		msg := "too many requests; retry after the Retry-After header's seconds"
		if c.Path() == api.PublishPath {
			return c.JSON(http.StatusTooManyRequests, &api.PublishResponse{ErrorMessage: msg, Code: api.ErrRateLimited, Padding: web.Padding()})
		}
		return c.JSON(http.StatusTooManyRequests, &api.ErrorResponse{Error: msg, ErrorCode: api.ErrRateLimited, Padding: web.Padding()})
	}
	e.Use(ratelimit.Middleware(m.rateLimiter, deny, func(c echo.Context) []ratelimit.Rule {
		if c.Request().Method != http.MethodPost {
			return nil
		}
		return routes[c.Path()]
	}))
	return nil
}

// checkSocketFree fails when a live server answers on the admin socket of
// the data directory: with a shared store no file lock keeps two servers
// from one data directory, and the second would take the first's socket.
func checkSocketFree(dataDir string) error {
	sock := filepath.Join(dataDir, AdminSocketName)
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("another server runs with the data directory %s (its socket %s answers); give each replica its own --data", dataDir, sock)
}

// storeName describes the store for people: "bolt", or the Redis URL
// without its password.
func (m *Main) storeName() string {
	s := m.Config.Store
	if s == "" || s == DefaultStore {
		return DefaultStore
	}
	if u, err := neturl.Parse(s); err == nil {
		return u.Redacted()
	}
	return "redis"
}

// checkMasterKey refuses to create a master key for a shared store that
// already holds keysets: they are sealed by the master key of the
// processes that created them, which every replica must be given
// (--master-key); a new one could open none of them.
func (m *Main) checkMasterKey(ctx context.Context) error {
	if !m.shared() {
		return nil
	}
	if _, err := os.Stat(m.Config.MasterKeyFile); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, name := range []string{"verification/secrets", "keyserver/revision-token"} {
		_, err := m.Keysets.LoadKeyset(ctx, name)
		if err == nil {
			return fmt.Errorf("master key %s does not exist, but the store %s holds keysets sealed by another one: give every process the same --master-key", m.Config.MasterKeyFile, m.storeName())
		}
		if !errors.Is(err, keyset.ErrNotFound) {
			return err
		}
	}
	return nil
}
