package bolt

import (
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/keyset"
)

var bucketKeysets = []byte("keysets")

// LoadKeyset implements keyset.Store.
func (d *DB) LoadKeyset(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketKeysets).Get([]byte(name))
		if v == nil {
			return keyset.ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load keyset %q: %w", name, err)
	}
	return out, nil
}

// SaveKeyset implements keyset.Store.
func (d *DB) SaveKeyset(ctx context.Context, name string, blob []byte) error {
	err := d.w.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketKeysets).Put([]byte(name), blob) })
	if err != nil {
		return fmt.Errorf("save keyset %q: %w", name, err)
	}
	return nil
}
