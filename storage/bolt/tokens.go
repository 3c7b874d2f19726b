package bolt

import (
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/verification"
)

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
