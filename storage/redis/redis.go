// Package redis stores Candor's data in Redis, the shared backend that lets
// several key-server and verification replicas run behind a load balancer.
// It implements the same store interfaces as storage/bolt and passes the
// same conformance suite (storage/storetest), against a standalone server
// and a Redis Cluster.
//
// Key names carry hash tags so that every multi-key operation stays in one
// slot: all exposure data shares the tag {exp} (a publish is one
// transaction over its keys and the time indexes). Durability is Redis'
// own: run it with AOF and `appendfsync always` (see deploy/redis), or
// `everysec` plus replicas and WAIT, trading the last second of writes for
// throughput.
package redis

import (
	"context"
	"errors"
	"fmt"
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

// Open connects to the Redis named by url: redis://, rediss://, or with
// several addresses (comma-separated host:port after the scheme) a cluster.
// Sentinel: redis://…?master_name=NAME with sentinel addresses.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	uopts, err := goredis.ParseURL(url)
	var uni *goredis.UniversalOptions
	if err == nil {
		uni = &goredis.UniversalOptions{Addrs: []string{uopts.Addr}, Username: uopts.Username, Password: uopts.Password, DB: uopts.DB, TLSConfig: uopts.TLSConfig}
	} else {
		// host1:port,host2:port → cluster (or sentinel with master_name).
		rest, ok := strings.CutPrefix(url, "redis+cluster://")
		if !ok {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		master := ""
		if i := strings.Index(rest, "?master_name="); i >= 0 {
			rest, master = rest[:i], rest[i+len("?master_name="):]
		}
		uni = &goredis.UniversalOptions{Addrs: strings.Split(rest, ","), MasterName: master}
	}
	rdb := goredis.NewUniversalClient(uni)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", uni.Addrs, err)
	}
	return New(rdb, opts...), nil
}

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
