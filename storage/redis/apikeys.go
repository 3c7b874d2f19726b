package redis

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/verification"
)

// CreateAPIKey implements verification.APIKeyStore.
func (v *VerificationStore) CreateAPIKey(ctx context.Context, k *verification.APIKey) error {
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("create API key %s: %w", k.ID, err)
	}
	ok, err := v.s.rdb.HSetNX(ctx, v.verKey("apikeys"), hex.EncodeToString(k.Hash[:]), b).Result()
	if err != nil {
		return fmt.Errorf("create API key %s: %w", k.ID, err)
	}
	if !ok {
		return fmt.Errorf("create API key %s: %w", k.ID, verification.ErrExists)
	}
	return v.s.wait(ctx)
}

// APIKey implements verification.APIKeyStore.
func (v *VerificationStore) APIKey(ctx context.Context, h verification.Hash) (*verification.APIKey, error) {
	b, err := v.s.rdb.HGet(ctx, v.verKey("apikeys"), hex.EncodeToString(h[:])).Bytes()
	if isNil(err) {
		err = verification.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("API key: %w", err)
	}
	var k verification.APIKey
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("API key: %w", err)
	}
	return &k, nil
}

// APIKeys implements verification.APIKeyStore.
func (v *VerificationStore) APIKeys(ctx context.Context, realm string) ([]*verification.APIKey, error) {
	all, err := v.s.rdb.HGetAll(ctx, v.verKey("apikeys")).Result()
	if err != nil {
		return nil, fmt.Errorf("API keys of %s: %w", realm, err)
	}
	var out []*verification.APIKey
	for _, h := range sortedKeys(all) {
		var k verification.APIKey
		if err := json.Unmarshal([]byte(all[h]), &k); err != nil {
			return nil, fmt.Errorf("API key %s: %w", h, err)
		}
		if k.Realm == realm {
			out = append(out, &k)
		}
	}
	return out, nil
}

// RevokeAPIKey implements verification.APIKeyStore.
func (v *VerificationStore) RevokeAPIKey(ctx context.Context, realm, id string, at time.Time) (*verification.APIKey, error) {
	key := v.verKey("apikeys")
	var out *verification.APIKey
	txf := func(tx *goredis.Tx) error {
		all, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return err
		}
		for _, h := range sortedKeys(all) {
			var k verification.APIKey
			if err := json.Unmarshal([]byte(all[h]), &k); err != nil {
				return fmt.Errorf("API key %s: %w", h, err)
			}
			if k.Realm != realm || k.ID != id {
				continue
			}
			if k.RevokedAt.IsZero() {
				k.RevokedAt = at
			}
			b, err := json.Marshal(&k)
			if err != nil {
				return err
			}
			if _, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.HSet(ctx, key, h, b)
				return nil
			}); err != nil {
				return err
			}
			out = &k
			return nil
		}
		return verification.ErrNotFound
	}
	if err := v.s.watchRetry(ctx, txf, key); err != nil {
		return nil, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	if err := v.s.wait(ctx); err != nil {
		return nil, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return out, nil
}
