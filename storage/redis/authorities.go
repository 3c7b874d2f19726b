package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyset"
)

// Authority and app records are small JSON documents; a set per kind lists
// them. Each kind shares one hash tag so the record and the set change in
// one transaction.

func getJSON[T any](ctx context.Context, s *Store, key string) (*T, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if isNil(err) {
		return nil, keyserver.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (s *Store) putJSON(ctx context.Context, key, set, member string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, key, b, 0)
		p.SAdd(ctx, set, member)
		return nil
	}); err != nil {
		return err
	}
	return s.wait(ctx)
}

func listJSON[T any](ctx context.Context, s *Store, set string, key func(string) string) ([]*T, error) {
	members, err := s.rdb.SMembers(ctx, set).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(members)
	var out []*T
	for _, m := range members {
		v, err := getJSON[T](ctx, s, key(m))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Store) haKey(issuer string) string { return s.prefix + ":{ha}:" + issuer }
func (s *Store) haSet() string              { return s.prefix + ":{ha}" }
func (s *Store) appKey(id string) string    { return s.prefix + ":{app}:" + id }
func (s *Store) appSet() string             { return s.prefix + ":{app}" }

// HealthAuthority implements keyserver.AuthorityStore.
func (s *Store) HealthAuthority(ctx context.Context, issuer string) (*keyserver.HealthAuthority, error) {
	h, err := getJSON[keyserver.HealthAuthority](ctx, s, s.haKey(issuer))
	if err != nil {
		return nil, fmt.Errorf("health authority %q: %w", issuer, err)
	}
	return h, nil
}

// HealthAuthorities implements keyserver.AuthorityStore.
func (s *Store) HealthAuthorities(ctx context.Context) ([]*keyserver.HealthAuthority, error) {
	return listJSON[keyserver.HealthAuthority](ctx, s, s.haSet(), s.haKey)
}

// PutHealthAuthority implements keyserver.AuthorityStore.
func (s *Store) PutHealthAuthority(ctx context.Context, h *keyserver.HealthAuthority) error {
	if err := s.putJSON(ctx, s.haKey(h.Issuer), s.haSet(), h.Issuer, h); err != nil {
		return fmt.Errorf("put health authority %q: %w", h.Issuer, err)
	}
	return nil
}

// App implements keyserver.AuthorityStore.
func (s *Store) App(ctx context.Context, id string) (*keyserver.App, error) {
	a, err := getJSON[keyserver.App](ctx, s, s.appKey(id))
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", id, err)
	}
	return a, nil
}

// Apps implements keyserver.AuthorityStore.
func (s *Store) Apps(ctx context.Context) ([]*keyserver.App, error) {
	return listJSON[keyserver.App](ctx, s, s.appSet(), s.appKey)
}

// PutApp implements keyserver.AuthorityStore.
func (s *Store) PutApp(ctx context.Context, a *keyserver.App) error {
	if err := s.putJSON(ctx, s.appKey(a.ID), s.appSet(), a.ID, a); err != nil {
		return fmt.Errorf("put app %q: %w", a.ID, err)
	}
	return nil
}

// LoadKeyset implements keyset.Store.
func (s *Store) LoadKeyset(ctx context.Context, name string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.key("keyset", name)).Bytes()
	if isNil(err) {
		return nil, fmt.Errorf("keyset %q: %w", name, keyset.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load keyset %q: %w", name, err)
	}
	return b, nil
}

// SaveKeyset implements keyset.Store.
func (s *Store) SaveKeyset(ctx context.Context, name string, blob []byte) error {
	if err := s.rdb.Set(ctx, s.key("keyset", name), blob, 0).Err(); err != nil {
		return fmt.Errorf("save keyset %q: %w", name, err)
	}
	return s.wait(ctx)
}
