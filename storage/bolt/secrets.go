package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"
)

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
