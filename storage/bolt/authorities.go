package bolt

import (
	"context"
	"encoding/json"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/keyserver"
)

var (
	bucketAuthorities = []byte("authorities")
	bucketApps        = []byte("apps")
)

func getJSON[T any](d *DB, bucket []byte, key string) (*T, error) {
	var v T
	err := d.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket).Get([]byte(key))
		if b == nil {
			return keyserver.ErrNotFound
		}
		return json.Unmarshal(b, &v)
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func listJSON[T any](d *DB, bucket []byte) ([]*T, error) {
	var out []*T
	err := d.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, b []byte) error {
			var v T
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			out = append(out, &v)
			return nil
		})
	})
	return out, err
}

func putJSON(d *DB, bucket []byte, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return d.w.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), b) })
}

// HealthAuthority implements keyserver.AuthorityStore.
func (d *DB) HealthAuthority(ctx context.Context, issuer string) (*keyserver.HealthAuthority, error) {
	h, err := getJSON[keyserver.HealthAuthority](d, bucketAuthorities, issuer)
	if err != nil {
		return nil, fmt.Errorf("health authority %q: %w", issuer, err)
	}
	return h, nil
}

// HealthAuthorities implements keyserver.AuthorityStore.
func (d *DB) HealthAuthorities(ctx context.Context) ([]*keyserver.HealthAuthority, error) {
	return listJSON[keyserver.HealthAuthority](d, bucketAuthorities)
}

// PutHealthAuthority implements keyserver.AuthorityStore.
func (d *DB) PutHealthAuthority(ctx context.Context, h *keyserver.HealthAuthority) error {
	if err := putJSON(d, bucketAuthorities, h.Issuer, h); err != nil {
		return fmt.Errorf("put health authority %q: %w", h.Issuer, err)
	}
	return nil
}

// App implements keyserver.AuthorityStore.
func (d *DB) App(ctx context.Context, id string) (*keyserver.App, error) {
	a, err := getJSON[keyserver.App](d, bucketApps, id)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", id, err)
	}
	return a, nil
}

// Apps implements keyserver.AuthorityStore.
func (d *DB) Apps(ctx context.Context) ([]*keyserver.App, error) {
	return listJSON[keyserver.App](d, bucketApps)
}

// PutApp implements keyserver.AuthorityStore.
func (d *DB) PutApp(ctx context.Context, a *keyserver.App) error {
	if err := putJSON(d, bucketApps, a.ID, a); err != nil {
		return fmt.Errorf("put app %q: %w", a.ID, err)
	}
	return nil
}
