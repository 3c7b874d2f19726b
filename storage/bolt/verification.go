package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/verification"
)

// The verification service's buckets. Keys scoped to a realm start with the
// realm name and a zero byte (realm names never contain one).
var (
	// verification_realms: name → Realm JSON.
	bucketVerRealms = []byte("verification_realms")
	// verification_apikeys: secret hash → APIKey JSON.
	bucketVerAPIKeys = []byte("verification_apikeys")
	// verification_codes: realm ‖ 0 ‖ uuid → Code JSON; once the code can
	// no longer be redeemed, only its Spent form (times to the hour).
	bucketVerCodes = []byte("verification_codes")
	// verification_code_hashes: realm ‖ 0 ‖ code hash → kind (1 byte) ‖ uuid.
	bucketVerCodeHashes = []byte("verification_code_hashes")
	// verification_code_hash_expiry: expiry (8 bytes, Unix ns, big endian) ‖
	// kind ‖ realm ‖ 0 ‖ uuid → empty: when each indexed hash expires.
	bucketVerHashExpiry = []byte("verification_code_hash_expiry")
	// verification_code_expiry: long expiry ‖ realm ‖ 0 ‖ uuid → empty: the
	// order in which records are deleted (the record's long expiry, so to
	// the hour once the code is spent).
	bucketVerCodeExpiry = []byte("verification_code_expiry")
	// verification_tokens_used: expiry rounded up to the hour ‖ realm ‖ 0 ‖
	// jti → 1. The hour, not the token's exact expiry, which is its claim
	// time plus the token lifetime.
	bucketVerTokensUsed = []byte("verification_tokens_used")
	// verification_stats: realm ‖ 0 ‖ YYYY-MM-DD → Stats JSON.
	bucketVerStats = []byte("verification_stats")
	// verification_secrets: name → sealed blob.
	bucketVerSecrets = []byte("verification_secrets")
)

var _ verification.Store = (*VerificationStore)(nil)

// VerificationStore implements verification.Store on a DB. Its writes are
// group-committed with the DB's other writes (see committer) rather than
// bbolt-batched: a write waits for at most the commit in progress, never
// for a timer.
type VerificationStore struct {
	db *bbolt.DB
	w  *committer
}

// NewVerificationStore returns the verification store on db.
func NewVerificationStore(db *DB) *VerificationStore {
	return &VerificationStore{db: db.db, w: db.w}
}

// cleanupBatch bounds the work of one cleanup transaction, so that a large
// backlog does not hold the write lock for long.
const cleanupBatch = 5000

func realmKey(realm string, rest []byte) []byte {
	k := make([]byte, 0, len(realm)+1+len(rest))
	k = append(k, realm...)
	k = append(k, 0)
	return append(k, rest...)
}

// splitRealmKey splits realm ‖ 0 ‖ rest.
func splitRealmKey(k []byte) (string, []byte, bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(k[:i]), k[i+1:], true
}

func nanoKey(t time.Time, rest ...[]byte) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

func nanoBefore(k []byte, t time.Time) bool {
	return len(k) >= 8 && t.After(time.Unix(0, 0)) && binary.BigEndian.Uint64(k[:8]) < uint64(t.UnixNano())
}

// ---- Realms ----

// CreateRealm implements verification.RealmStore.
func (s *VerificationStore) CreateRealm(ctx context.Context, r *verification.Realm) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	err = s.w.update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketVerRealms)
		if bk.Get([]byte(r.Name)) != nil {
			return verification.ErrExists
		}
		return bk.Put([]byte(r.Name), b)
	})
	if err != nil {
		return fmt.Errorf("create realm %q: %w", r.Name, err)
	}
	return nil
}

// UpdateRealm implements verification.RealmStore.
func (s *VerificationStore) UpdateRealm(ctx context.Context, name string, fn func(*verification.Realm) error) (*verification.Realm, error) {
	var out *verification.Realm
	err := s.w.update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketVerRealms)
		r, err := getJSON[verification.Realm](bk, []byte(name), verification.ErrNotFound)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
		out = r
		return putJSON(bk, []byte(name), r)
	})
	if err != nil {
		return nil, fmt.Errorf("update realm %q: %w", name, err)
	}
	return out, nil
}

// Realm implements verification.RealmStore.
func (s *VerificationStore) Realm(ctx context.Context, name string) (*verification.Realm, error) {
	var r *verification.Realm
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		r, err = getJSON[verification.Realm](tx.Bucket(bucketVerRealms), []byte(name), verification.ErrNotFound)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("realm %q: %w", name, err)
	}
	return r, nil
}

// Realms implements verification.RealmStore.
func (s *VerificationStore) Realms(ctx context.Context) ([]*verification.Realm, error) {
	var out []*verification.Realm
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		out, err = allJSON[verification.Realm](tx.Bucket(bucketVerRealms), nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("realms: %w", err)
	}
	return out, nil
}

// ---- API keys ----

// CreateAPIKey implements verification.APIKeyStore.
func (s *VerificationStore) CreateAPIKey(ctx context.Context, k *verification.APIKey) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	err = s.w.update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketVerAPIKeys)
		if bk.Get(k.Hash[:]) != nil {
			return verification.ErrExists
		}
		return bk.Put(k.Hash[:], b)
	})
	if err != nil {
		return fmt.Errorf("create API key %s: %w", k.ID, err)
	}
	return nil
}

// APIKey implements verification.APIKeyStore.
func (s *VerificationStore) APIKey(ctx context.Context, h verification.Hash) (*verification.APIKey, error) {
	var k *verification.APIKey
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		k, err = getJSON[verification.APIKey](tx.Bucket(bucketVerAPIKeys), h[:], verification.ErrNotFound)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("API key: %w", err)
	}
	return k, nil
}

// APIKeys implements verification.APIKeyStore.
func (s *VerificationStore) APIKeys(ctx context.Context, realm string) ([]*verification.APIKey, error) {
	var out []*verification.APIKey
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		out, err = allJSON(tx.Bucket(bucketVerAPIKeys), func(k *verification.APIKey) bool { return k.Realm == realm })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("API keys of %q: %w", realm, err)
	}
	return out, nil
}

// RevokeAPIKey implements verification.APIKeyStore.
func (s *VerificationStore) RevokeAPIKey(ctx context.Context, realm, id string, at time.Time) (*verification.APIKey, error) {
	var out *verification.APIKey
	err := s.w.update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketVerAPIKeys)
		c := bk.Cursor()
		for hk, v := c.First(); hk != nil; hk, v = c.Next() {
			var k verification.APIKey
			if err := json.Unmarshal(v, &k); err != nil {
				return err
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
			out = &k
			return bk.Put(append([]byte(nil), hk...), b)
		}
		return verification.ErrNotFound
	})
	if err != nil {
		return nil, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return out, nil
}

// ---- Codes ----

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

// ---- Tokens ----

// ClaimToken implements verification.TokenStore; see ClaimCode for why it
// is atomic.
func (s *VerificationStore) ClaimToken(ctx context.Context, realm, jti string, expires, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := nanoKey(verification.CoarseTimeAfter(expires), realmKey(realm, []byte(jti)))
	// Tokens used before expiries were rounded are keyed by their exact
	// expiry; such entries are gone one token lifetime after the upgrade.
	exact := nanoKey(expires, realmKey(realm, []byte(jti)))
	var outcome error
	err := s.w.update(func(tx *bbolt.Tx) error {
		outcome = nil
		used := tx.Bucket(bucketVerTokensUsed)
		if used.Get(key) != nil || used.Get(exact) != nil {
			outcome = verification.ErrUsed
			return nil
		}
		// A non-empty value: within a transaction Get returns nil for a
		// key stored with a nil value, which would let a second claim in
		// the same batch through.
		if err := used.Put(key, []byte{1}); err != nil {
			return err
		}
		return addStats(tx, realm, now, verification.Stats{CertificatesIssued: 1})
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return fmt.Errorf("claim token: %w", err)
	}
	return nil
}

// RemoveExpiredTokens implements verification.TokenStore.
func (s *VerificationStore) RemoveExpiredTokens(ctx context.Context, before time.Time) (int, error) {
	return s.drain(ctx, bucketVerTokensUsed, before, nil)
}

// ---- Stats ----

func statsKey(realm string, day time.Time) []byte {
	return realmKey(realm, []byte(verification.UTCDay(day)))
}

func getStats(tx *bbolt.Tx, realm string, day time.Time) (verification.Stats, error) {
	var st verification.Stats
	if v := tx.Bucket(bucketVerStats).Get(statsKey(realm, day)); v != nil {
		if err := json.Unmarshal(v, &st); err != nil {
			return st, fmt.Errorf("stats of %s: %w", realm, err)
		}
	}
	return st, nil
}

func putStats(tx *bbolt.Tx, realm string, day time.Time, st verification.Stats) error {
	return putJSON(tx.Bucket(bucketVerStats), statsKey(realm, day), st)
}

func addStats(tx *bbolt.Tx, realm string, day time.Time, delta verification.Stats) error {
	st, err := getStats(tx, realm, day)
	if err != nil {
		return err
	}
	st.Add(delta)
	return putStats(tx, realm, day, st)
}

// AddStats implements verification.StatsStore.
func (s *VerificationStore) AddStats(ctx context.Context, realm string, day time.Time, delta verification.Stats) error {
	err := s.w.update(func(tx *bbolt.Tx) error { return addStats(tx, realm, day, delta) })
	if err != nil {
		return fmt.Errorf("add stats of %s: %w", realm, err)
	}
	return nil
}

// Stats implements verification.StatsStore.
func (s *VerificationStore) Stats(ctx context.Context, realm string, from, to time.Time) ([]verification.DayStats, error) {
	var out []verification.DayStats
	end := statsKey(realm, to)
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketVerStats).Cursor()
		for k, v := c.Seek(statsKey(realm, from)); k != nil && bytes.Compare(k, end) <= 0; k, v = c.Next() {
			r, day, ok := splitRealmKey(k)
			if !ok || r != realm {
				break
			}
			ds := verification.DayStats{Realm: realm, Day: string(day)}
			if err := json.Unmarshal(v, &ds.Stats); err != nil {
				return err
			}
			out = append(out, ds)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", realm, err)
	}
	return out, nil
}

// ---- Secrets ----

// SealedSecret implements verification.SecretStore.
func (s *VerificationStore) SealedSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketVerSecrets).Get([]byte(name)))
		return nil
	})
	if err != nil || out != nil {
		return out, err
	}
	err = s.w.update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketVerSecrets)
		if v := bk.Get([]byte(name)); v != nil {
			out = bytes.Clone(v)
			return nil
		}
		blob, err := create()
		if err != nil {
			return err
		}
		out = blob
		return bk.Put([]byte(name), blob)
	})
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return out, nil
}
