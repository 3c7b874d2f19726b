package bolt

import (
	"context"
	"encoding/json"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/verification"
)

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
