package keyserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/candor-en/candor/api"
)

// authorityCache keeps apps, health authorities and parsed public keys in
// memory for a short time: they are read on every publish and change rarely.
// A negative result is cached too, so unknown app ids cannot hammer the store.
type authorityCache struct {
	store AuthorityStore
	ttl   time.Duration
	now   func() time.Time

	mu          sync.RWMutex
	apps        map[string]cacheEntry[*App]
	authorities map[string]cacheEntry[*HealthAuthority]
	keys        map[string]ecdsaKey // by PEM text; immutable so never expires
}

type cacheEntry[T any] struct {
	val     T
	err     error
	expires time.Time
}

func newAuthorityCache(store AuthorityStore, ttl time.Duration, now func() time.Time) *authorityCache {
	return &authorityCache{
		store: store, ttl: ttl, now: now,
		apps:        map[string]cacheEntry[*App]{},
		authorities: map[string]cacheEntry[*HealthAuthority]{},
		keys:        map[string]ecdsaKey{},
	}
}

func cached[T any](c *authorityCache, m map[string]cacheEntry[T], name string, load func() (T, error)) (T, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := m[name]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.val, e.err
	}
	v, err := load()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return v, err // transient: do not cache
	}
	c.mu.Lock()
	if len(m) > 10000 {
		clear(m) // bound memory against random ids
	}
	m[name] = cacheEntry[T]{val: v, err: err, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return v, err
}

func (c *authorityCache) App(ctx context.Context, id string) (*App, error) {
	return cached(c, c.apps, id, func() (*App, error) { return c.store.App(ctx, id) })
}

func (c *authorityCache) HealthAuthority(ctx context.Context, issuer string) (*HealthAuthority, error) {
	return cached(c, c.authorities, issuer, func() (*HealthAuthority, error) { return c.store.HealthAuthority(ctx, issuer) })
}

func (c *authorityCache) PublicKey(k *AuthorityKey) (ecdsaKey, error) {
	c.mu.RLock()
	pub, ok := c.keys[k.PEM]
	c.mu.RUnlock()
	if ok {
		return pub, nil
	}
	pub, err := api.ParsePublicKeyPEM(k.PEM)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.keys[k.PEM] = pub
	c.mu.Unlock()
	return pub, nil
}

// Invalidate drops every cached app and authority, after an admin change.
func (c *authorityCache) Invalidate() {
	c.mu.Lock()
	clear(c.apps)
	clear(c.authorities)
	c.mu.Unlock()
}
