package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/verification"
)

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
