package bolt

import (
	"bytes"
	"encoding/binary"
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
