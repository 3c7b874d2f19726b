// Package redis stores Candor's data in Redis, the shared backend that lets
// several key-server and verification replicas run behind a load balancer.
// It implements the same store interfaces as storage/bolt — exposures and
// revisions, authorities and apps, keysets (Store), export configurations,
// batches, leases and events (Store), realms, API keys, codes, tokens,
// statistics and secrets (VerificationStore), users and sessions
// (AccountStore) — and passes the same conformance suite
// (storage/storetest) against a standalone server and a Redis Cluster. It
// also holds what replicas share besides: the data-use outbox (Outbox), the
// request rate-limit counters (RateCounter, RateSecrets) and the
// failed-redemption buckets (FailureLimiter).
//
// Key names carry hash tags so that every multi-key operation stays in one
// slot: all exposure data shares the tag {exp} (a publish is one
// transaction over its keys and the time indexes); see each file for its
// keys. Durability is Redis' own: run it with AOF and `appendfsync always`
// (see deploy/redis), or `everysec` plus replicas and WAIT
// (WithWaitReplicas), trading the last second of writes for throughput.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key name.
const DefaultPrefix = "candor"

// Store is the Redis-backed store.
type Store struct {
	rdb    goredis.UniversalClient
	prefix string
	// waitReplicas, when positive, makes every acknowledged write wait
	// until that many replicas have it (Redis WAIT).
	waitReplicas int
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the key-name prefix (default DefaultPrefix).
func WithPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// WithWaitReplicas makes writes wait for n replicas before they are
// acknowledged (standalone and Sentinel; in a cluster WAIT reaches a random
// node, so rely on AOF there).
func WithWaitReplicas(n int) Option { return func(s *Store) { s.waitReplicas = n } }

// New returns a Store over rdb.
func New(rdb goredis.UniversalClient, opts ...Option) *Store {
	s := &Store{rdb: rdb, prefix: DefaultPrefix}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open connects to the Redis that url names:
//
//	redis://[user:password@]host:port[/db]            a standalone server
//	rediss://…                                        the same over TLS
//	redis+cluster://[user:password@]h1:p1,h2:p2,…     a Redis Cluster (any of its nodes)
//	rediss+cluster://…                                the same over TLS
//	redis+sentinel://[user:password@]s1:p1,…/master[/db]  a master found by Sentinel
//
// It pings the server before returning.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	uni, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	rdb := goredis.NewUniversalClient(uni)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", strings.Join(uni.Addrs, ","), err)
	}
	return New(rdb, opts...), nil
}

// ParseURL parses the URLs that Open accepts.
func ParseURL(raw string) (*goredis.UniversalOptions, error) {
	u, err := neturl.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	uni := &goredis.UniversalOptions{}
	if u.User != nil {
		uni.Username = u.User.Username()
		uni.Password, _ = u.User.Password()
	}
	if u.Host == "" {
		return nil, fmt.Errorf("redis url %q: no host", redactURL(u))
	}
	uni.Addrs = strings.Split(u.Host, ",")
	scheme, mode, _ := strings.Cut(u.Scheme, "+")
	switch scheme {
	case "redis":
	case "rediss":
		host, _, _ := net.SplitHostPort(uni.Addrs[0])
		uni.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	default:
		return nil, fmt.Errorf("redis url %q: scheme must be redis, rediss, redis+cluster or redis+sentinel", redactURL(u))
	}
	path := strings.Trim(u.Path, "/")
	switch mode {
	case "":
		if len(uni.Addrs) > 1 {
			return nil, fmt.Errorf("redis url %q: several addresses: use redis+cluster:// or redis+sentinel://", redactURL(u))
		}
	case "cluster":
		uni.IsClusterMode = true
		if path != "" {
			return nil, fmt.Errorf("redis url %q: a cluster has no database number", redactURL(u))
		}
		path = ""
	case "sentinel":
		master, rest, _ := strings.Cut(path, "/")
		if master == "" {
			return nil, fmt.Errorf("redis url %q: give the master name as the path", redactURL(u))
		}
		uni.MasterName, path = master, rest
	default:
		return nil, fmt.Errorf("redis url %q: unknown mode %q", redactURL(u), mode)
	}
	if path != "" {
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("redis url %q: bad database number %q", redactURL(u), path)
		}
		uni.DB = db
	}
	return uni, nil
}

func redactURL(u *neturl.URL) string { return u.Redacted() }

// Close closes the connection.
func (s *Store) Close() error { return s.rdb.Close() }

// Client returns the underlying client.
func (s *Store) Client() goredis.UniversalClient { return s.rdb }

func (s *Store) key(parts ...string) string {
	return s.prefix + ":" + strings.Join(parts, ":")
}

// wait applies WithWaitReplicas after a write.
func (s *Store) wait(ctx context.Context) error {
	if s.waitReplicas <= 0 {
		return nil
	}
	n, err := s.rdb.Do(ctx, "WAIT", s.waitReplicas, 0).Int()
	if err != nil {
		return fmt.Errorf("redis wait: %w", err)
	}
	if int(n) < s.waitReplicas {
		return fmt.Errorf("redis wait: %d of %d replicas", n, s.waitReplicas)
	}
	return nil
}

var errNil = goredis.Nil

func isNil(err error) bool { return errors.Is(err, errNil) }
