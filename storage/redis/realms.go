package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/verification"
)

// CreateRealm implements verification.RealmStore.
func (v *VerificationStore) CreateRealm(ctx context.Context, r *verification.Realm) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("create realm %q: %w", r.Name, err)
	}
	ok, err := v.s.rdb.HSetNX(ctx, v.verKey("realms"), r.Name, b).Result()
	if err != nil {
		return fmt.Errorf("create realm %q: %w", r.Name, err)
	}
	if !ok {
		return fmt.Errorf("create realm %q: %w", r.Name, verification.ErrExists)
	}
	return v.s.wait(ctx)
}

// UpdateRealm implements verification.RealmStore with an optimistic
// transaction on the realms hash.
func (v *VerificationStore) UpdateRealm(ctx context.Context, name string, fn func(*verification.Realm) error) (*verification.Realm, error) {
	key := v.verKey("realms")
	var out *verification.Realm
	txf := func(tx *goredis.Tx) error {
		b, err := tx.HGet(ctx, key, name).Bytes()
		if isNil(err) {
			return verification.ErrNotFound
		}
		if err != nil {
			return err
		}
		var r verification.Realm
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
		nb, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		if _, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, key, name, nb)
			return nil
		}); err != nil {
			return err
		}
		out = &r
		return nil
	}
	if err := v.s.watchRetry(ctx, txf, key); err != nil {
		return nil, fmt.Errorf("update realm %q: %w", name, err)
	}
	if err := v.s.wait(ctx); err != nil {
		return nil, fmt.Errorf("update realm %q: %w", name, err)
	}
	return out, nil
}

// Realm implements verification.RealmStore.
func (v *VerificationStore) Realm(ctx context.Context, name string) (*verification.Realm, error) {
	b, err := v.s.rdb.HGet(ctx, v.verKey("realms"), name).Bytes()
	if isNil(err) {
		err = verification.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("realm %q: %w", name, err)
	}
	var r verification.Realm
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("realm %q: %w", name, err)
	}
	return &r, nil
}

// Realms implements verification.RealmStore.
func (v *VerificationStore) Realms(ctx context.Context) ([]*verification.Realm, error) {
	all, err := v.s.rdb.HGetAll(ctx, v.verKey("realms")).Result()
	if err != nil {
		return nil, fmt.Errorf("realms: %w", err)
	}
	names := sortedKeys(all)
	out := make([]*verification.Realm, 0, len(names))
	for _, n := range names {
		var r verification.Realm
		if err := json.Unmarshal([]byte(all[n]), &r); err != nil {
			return nil, fmt.Errorf("realm %q: %w", n, err)
		}
		out = append(out, &r)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
