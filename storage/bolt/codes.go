package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/verification"
)

func getCode(tx *bbolt.Tx, realm string, uuid []byte) (*verification.Code, error) {
	c, err := getJSON[verification.Code](tx.Bucket(bucketVerCodes), realmKey(realm, uuid), verification.ErrNotFound)
	if err != nil && !errors.Is(err, verification.ErrNotFound) {
		return nil, fmt.Errorf("code %s: %w", uuid, err)
	}
	return c, err
}

func putCode(tx *bbolt.Tx, c *verification.Code) error {
	return putJSON(tx.Bucket(bucketVerCodes), realmKey(c.Realm, []byte(c.UUID)), c)
}

// hashExpiryKey is the key of a hash's expiry index entry.
func hashExpiryKey(c *verification.Code, kind verification.CodeKind) []byte {
	return nanoKey(c.ExpiresFor(kind), []byte{byte(kind)}, realmKey(c.Realm, []byte(c.UUID)))
}

func codeExpiryKey(c *verification.Code) []byte {
	return nanoKey(c.LongExpiresAt, realmKey(c.Realm, []byte(c.UUID)))
}

// indexHashes adds the code's hashes and their expiry entries.
func indexHashes(tx *bbolt.Tx, c *verification.Code) error {
	hashes, expiry := tx.Bucket(bucketVerCodeHashes), tx.Bucket(bucketVerHashExpiry)
	for _, kind := range []verification.CodeKind{verification.ShortCode, verification.LongCode} {
		h := codeHash(c, kind)
		if *h == (verification.Hash{}) {
			continue
		}
		if err := hashes.Put(realmKey(c.Realm, h[:]), append([]byte{byte(kind)}, c.UUID...)); err != nil {
			return err
		}
		if err := expiry.Put(hashExpiryKey(c, kind), nil); err != nil {
			return err
		}
	}
	return nil
}

// unindexHashes removes the code's hashes of the given kinds from the index
// and the record, with their expiry entries.
func unindexHashes(tx *bbolt.Tx, c *verification.Code, kinds ...verification.CodeKind) error {
	hashes, expiry := tx.Bucket(bucketVerCodeHashes), tx.Bucket(bucketVerHashExpiry)
	for _, kind := range kinds {
		h := codeHash(c, kind)
		if *h == (verification.Hash{}) {
			continue
		}
		if err := hashes.Delete(realmKey(c.Realm, h[:])); err != nil {
			return err
		}
		if err := expiry.Delete(hashExpiryKey(c, kind)); err != nil {
			return err
		}
		*h = verification.Hash{}
	}
	return nil
}

func codeHash(c *verification.Code, kind verification.CodeKind) *verification.Hash {
	if kind == verification.LongCode {
		return &c.LongHash
	}
	return &c.ShortHash
}

// IssueCode implements verification.CodeStore. Concurrent writes share one
// transaction and fsync (committer); refusals write nothing and are not
// transaction errors, so they never make the others retry.
func (s *VerificationStore) IssueCode(ctx context.Context, c *verification.Code, quota int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var outcome error
	err := s.w.update(func(tx *bbolt.Tx) error {
		outcome = nil // this may run more than once
		if tx.Bucket(bucketVerCodes).Get(realmKey(c.Realm, []byte(c.UUID))) != nil {
			outcome = verification.ErrExists
			return nil
		}
		hashes := tx.Bucket(bucketVerCodeHashes)
		if hashes.Get(realmKey(c.Realm, c.ShortHash[:])) != nil || hashes.Get(realmKey(c.Realm, c.LongHash[:])) != nil {
			outcome = verification.ErrCollision
			return nil
		}
		st, err := getStats(tx, c.Realm, c.IssuedAt)
		if err != nil {
			return err
		}
		if quota > 0 && st.CodesIssued >= int64(quota) {
			outcome = verification.ErrQuotaExceeded
			return nil
		}
		st.CodesIssued++
		if err := putStats(tx, c.Realm, c.IssuedAt, st); err != nil {
			return err
		}
		if err := putCode(tx, c); err != nil {
			return err
		}
		if err := indexHashes(tx, c); err != nil {
			return err
		}
		return tx.Bucket(bucketVerCodeExpiry).Put(codeExpiryKey(c), nil)
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return fmt.Errorf("issue code %s: %w", c.UUID, err)
	}
	return nil
}

// FindCode implements verification.CodeStore.
func (s *VerificationStore) FindCode(ctx context.Context, realm string, h verification.Hash) (*verification.Code, verification.CodeKind, error) {
	var out *verification.Code
	var kind verification.CodeKind
	err := s.db.View(func(tx *bbolt.Tx) error {
		idx := tx.Bucket(bucketVerCodeHashes).Get(realmKey(realm, h[:]))
		if len(idx) < 2 {
			return verification.ErrNotFound
		}
		kind = verification.CodeKind(idx[0])
		var err error
		out, err = getCode(tx, realm, idx[1:])
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("find code: %w", err)
	}
	return out, kind, nil
}

// ClaimCode implements verification.CodeStore: check and mark happen in one
// write transaction, bbolt runs write transactions one at a time, and the
// writes of a group commit run one after another in their transaction, so
// two claims of one code cannot both see it unclaimed.
func (s *VerificationStore) ClaimCode(ctx context.Context, realm string, h verification.Hash, now time.Time) (*verification.Code, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out *verification.Code
	var outcome error
	err := s.w.update(func(tx *bbolt.Tx) error {
		out, outcome = nil, nil // this may run more than once
		idx := tx.Bucket(bucketVerCodeHashes).Get(realmKey(realm, h[:]))
		if len(idx) < 2 {
			outcome = verification.ErrNotFound
			return nil
		}
		kind := verification.CodeKind(idx[0])
		c, err := getCode(tx, realm, idx[1:])
		if errors.Is(err, verification.ErrNotFound) {
			outcome = err
			return nil
		}
		if err != nil {
			return err
		}
		if c.Claimed {
			outcome = verification.ErrNotFound
			return nil
		}
		if !now.Before(c.ExpiresFor(kind)) {
			outcome = verification.ErrExpired
			return nil
		}
		if err := unindexHashes(tx, c, verification.ShortCode, verification.LongCode); err != nil {
			return err
		}
		c.Claimed, c.ClaimedAt = true, now.UTC()
		if err := putSpent(tx, c); err != nil {
			return err
		}
		if err := addStats(tx, realm, now, verification.Stats{CodesClaimed: 1}); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return nil, fmt.Errorf("claim code: %w", err)
	}
	return out, nil
}

// CodeByUUID implements verification.CodeStore.
func (s *VerificationStore) CodeByUUID(ctx context.Context, realm, uuid string) (*verification.Code, error) {
	var out *verification.Code
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		out, err = getCode(tx, realm, []byte(uuid))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("code %s: %w", uuid, err)
	}
	return out, nil
}

// ExpireCode implements verification.CodeStore.
func (s *VerificationStore) ExpireCode(ctx context.Context, realm, uuid string, now time.Time) (*verification.Code, error) {
	var out *verification.Code
	err := s.w.update(func(tx *bbolt.Tx) error {
		c, err := getCode(tx, realm, []byte(uuid))
		if err != nil {
			return err
		}
		if c.Claimed {
			return verification.ErrClaimed
		}
		if !now.Before(c.LongExpiresAt) {
			return verification.ErrExpired
		}
		// Re-index under the new expiry times.
		short, long := c.ShortHash, c.LongHash
		if err := unindexHashes(tx, c, verification.ShortCode, verification.LongCode); err != nil {
			return err
		}
		if err := tx.Bucket(bucketVerCodeExpiry).Delete(codeExpiryKey(c)); err != nil {
			return err
		}
		c.ShortHash, c.LongHash = short, long
		c.ExpiresAt = minTime(c.ExpiresAt, now)
		c.LongExpiresAt = now
		if err := indexHashes(tx, c); err != nil {
			return err
		}
		if err := tx.Bucket(bucketVerCodeExpiry).Put(codeExpiryKey(c), nil); err != nil {
			return err
		}
		out = c
		return putCode(tx, c)
	})
	if err != nil {
		return nil, fmt.Errorf("expire code %s: %w", uuid, err)
	}
	return out, nil
}

// putSpent stores c, which can no longer be redeemed, in its Spent form,
// moving its deletion entry to the coarse long expiry.
func putSpent(tx *bbolt.Tx, c *verification.Code) error {
	spent := c.Spent()
	expiry := tx.Bucket(bucketVerCodeExpiry)
	if err := expiry.Delete(codeExpiryKey(c)); err != nil {
		return err
	}
	if err := expiry.Put(codeExpiryKey(spent), nil); err != nil {
		return err
	}
	return putCode(tx, spent)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// RemoveExpiredCodes implements verification.CodeStore, in transactions of
// at most cleanupBatch entries.
func (s *VerificationStore) RemoveExpiredCodes(ctx context.Context, hashesBefore, recordsBefore time.Time) (int, int, error) {
	hashes, err := s.drain(ctx, bucketVerHashExpiry, hashesBefore, func(tx *bbolt.Tx, k []byte) error {
		// k = expiry ‖ kind ‖ realm ‖ 0 ‖ uuid
		if len(k) < 10 {
			return nil
		}
		kind := verification.CodeKind(k[8])
		realm, uuid, ok := splitRealmKey(k[9:])
		if !ok {
			return nil
		}
		c, err := getCode(tx, realm, uuid)
		if errors.Is(err, verification.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(hashExpiryKey(c, kind), k) {
			return nil // a stale entry: the code's expiry moved
		}
		if err := unindexHashes(tx, c, kind); err != nil {
			return err
		}
		if c.Hashed() || c.Claimed {
			return putCode(tx, c)
		}
		if err := addStats(tx, realm, c.LongExpiresAt, verification.Stats{CodesExpired: 1}); err != nil {
			return err
		}
		return putSpent(tx, c)
	})
	if err != nil {
		return hashes, 0, err
	}
	records, err := s.drain(ctx, bucketVerCodeExpiry, recordsBefore, func(tx *bbolt.Tx, k []byte) error {
		realm, uuid, ok := splitRealmKey(k[8:])
		if !ok {
			return nil
		}
		c, err := getCode(tx, realm, uuid)
		if errors.Is(err, verification.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(codeExpiryKey(c), k) {
			return nil // a stale entry: the code's expiry moved
		}
		if err := unindexHashes(tx, c, verification.ShortCode, verification.LongCode); err != nil {
			return err
		}
		return tx.Bucket(bucketVerCodes).Delete(realmKey(realm, uuid))
	})
	return hashes, records, err
}

// drain deletes the entries of a time-ordered index bucket that lie before
// t, calling fn for each first, in bounded transactions.
func (s *VerificationStore) drain(ctx context.Context, bucket []byte, t time.Time, fn func(*bbolt.Tx, []byte) error) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := s.w.update(func(tx *bbolt.Tx) error {
			n = 0
			c := tx.Bucket(bucket).Cursor()
			for k, _ := c.First(); k != nil && nanoBefore(k, t) && n < cleanupBatch; k, _ = c.First() {
				key := append([]byte(nil), k...)
				if fn != nil {
					if err := fn(tx, key); err != nil {
						return err
					}
				}
				if err := tx.Bucket(bucket).Delete(key); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("cleanup %s: %w", bucket, err)
		}
		if n < cleanupBatch {
			return total, nil
		}
	}
}
