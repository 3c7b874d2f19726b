package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/internal/record"
)

// Exposure key names (all under the {exp} hash tag):
//   <prefix>:{exp}:k:<hex key>   the record
//   <prefix>:{exp}:created       sorted set: hex key scored by created time
//   <prefix>:{exp}:revised       sorted set: hex key scored by revised time

func (s *Store) expKey(k [keyserver.KeyLength]byte) string {
	return s.prefix + ":{exp}:k:" + hex.EncodeToString(k[:])
}
func (s *Store) createdKey() string { return s.prefix + ":{exp}:created" }
func (s *Store) revisedKey() string { return s.prefix + ":{exp}:revised" }

// maxPublishRetries bounds optimistic-transaction retries under contention.
const maxPublishRetries = 20

// Publish implements keyserver.ExposureStore with an optimistic transaction:
// WATCH the records, read them, plan, then MULTI/EXEC the writes; a
// concurrent change to any watched record retries the whole step.
func (s *Store) Publish(ctx context.Context, keys [][keyserver.KeyLength]byte, plan func(map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error)) error {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = s.expKey(k)
	}
	var planErr error
	txf := func(tx *goredis.Tx) error {
		planErr = nil
		vals, err := tx.MGet(ctx, names...).Result()
		if err != nil {
			return err
		}
		existing := map[[keyserver.KeyLength]byte]*keyserver.Exposure{}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			e, err := record.DecodeExposure([]byte(str))
			if err != nil {
				return fmt.Errorf("exposure %s: %w", names[i], err)
			}
			existing[keys[i]] = e
		}
		ch, err := plan(existing)
		if err != nil {
			planErr = err
			return nil
		}
		if len(ch.Insert) == 0 && len(ch.Revise) == 0 {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for _, e := range ch.Insert {
				p.Set(ctx, s.expKey(e.Key), record.EncodeExposure(e), 0)
				p.ZAdd(ctx, s.createdKey(), goredis.Z{Score: float64(e.CreatedAt.Unix()), Member: hex.EncodeToString(e.Key[:])})
			}
			for _, e := range ch.Revise {
				p.Set(ctx, s.expKey(e.Key), record.EncodeExposure(e), 0)
				p.ZAdd(ctx, s.revisedKey(), goredis.Z{Score: float64(e.RevisedAt.Unix()), Member: hex.EncodeToString(e.Key[:])})
			}
			return nil
		})
		return err
	}
	for range maxPublishRetries {
		err := s.rdb.Watch(ctx, txf, names...)
		if errors.Is(err, goredis.TxFailedErr) {
			continue
		}
		if err != nil {
			return fmt.Errorf("publish %d keys: %w", len(keys), err)
		}
		if planErr != nil {
			return planErr
		}
		return s.wait(ctx)
	}
	return fmt.Errorf("publish %d keys: too much contention", len(keys))
}

// Exposure returns one stored exposure.
func (s *Store) Exposure(ctx context.Context, key [keyserver.KeyLength]byte) (*keyserver.Exposure, error) {
	b, err := s.rdb.Get(ctx, s.expKey(key)).Bytes()
	if isNil(err) {
		return nil, keyserver.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("exposure: %w", err)
	}
	return record.DecodeExposure(b)
}

const scanChunk = 5000

func (s *Store) scan(ctx context.Context, index string, from, to time.Time, fn func(*keyserver.Exposure) error) (int, error) {
	skipped := 0
	min := strconv.FormatInt(from.Unix(), 10)
	max := "(" + strconv.FormatInt(to.Unix(), 10)
	var offset int64
	for {
		members, err := s.rdb.ZRangeByScore(ctx, index, &goredis.ZRangeBy{Min: min, Max: max, Offset: offset, Count: scanChunk}).Result()
		if err != nil {
			return skipped, fmt.Errorf("scan %s: %w", index, err)
		}
		if len(members) == 0 {
			return skipped, nil
		}
		offset += int64(len(members))
		names := make([]string, len(members))
		for i, m := range members {
			names[i] = s.prefix + ":{exp}:k:" + m
		}
		vals, err := s.rdb.MGet(ctx, names...).Result()
		if err != nil {
			return skipped, fmt.Errorf("scan %s: %w", index, err)
		}
		for _, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // deleted meanwhile
			}
			e, err := record.DecodeExposure([]byte(str))
			if err != nil {
				skipped++
				continue
			}
			if err := fn(e); err != nil {
				return skipped, err
			}
		}
		if len(members) < scanChunk {
			return skipped, nil
		}
	}
}

// DeleteExposuresCreatedBefore removes every exposure created before cutoff.
func (s *Store) DeleteExposuresCreatedBefore(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	max := "(" + strconv.FormatInt(cutoff.Unix(), 10)
	for {
		members, err := s.rdb.ZRangeByScore(ctx, s.createdKey(), &goredis.ZRangeBy{Min: "-inf", Max: max, Count: scanChunk}).Result()
		if err != nil {
			return total, fmt.Errorf("delete exposures: %w", err)
		}
		if len(members) == 0 {
			return total, nil
		}
		names := make([]string, len(members))
		anyMembers := make([]any, len(members))
		for i, m := range members {
			names[i] = s.prefix + ":{exp}:k:" + m
			anyMembers[i] = m
		}
		_, err = s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, names...)
			p.ZRem(ctx, s.createdKey(), anyMembers...)
			p.ZRem(ctx, s.revisedKey(), anyMembers...)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("delete exposures: %w", err)
		}
		total += len(members)
	}
}
