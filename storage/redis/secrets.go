package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// SealedSecret implements verification.SecretStore with HSETNX: the first
// writer on any replica wins and everyone reads its blob.
func (v *VerificationStore) SealedSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	key := v.verKey("secrets")
	b, err := v.s.rdb.HGet(ctx, key, name).Bytes()
	if err == nil {
		return b, nil
	}
	if !isNil(err) {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	blob, err := create()
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	if _, err := v.s.rdb.HSetNX(ctx, key, name, blob).Result(); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	if err := v.s.wait(ctx); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	b, err = v.s.rdb.HGet(ctx, key, name).Bytes()
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return b, nil
}

// errContention is returned when optimistic transactions keep failing.
var errContention = errors.New("too much contention")

// watchRetry runs fn in a WATCH transaction on keys, again when a watched
// key changed, at most maxPublishRetries times.
func (s *Store) watchRetry(ctx context.Context, fn func(*goredis.Tx) error, keys ...string) error {
	for range maxPublishRetries {
		err := s.rdb.Watch(ctx, fn, keys...)
		if errors.Is(err, goredis.TxFailedErr) {
			continue
		}
		return err
	}
	return errContention
}
