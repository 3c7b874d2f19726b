package bolt

import (
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/keyserver"
)

var (
	bucketAuthorities = []byte("authorities")
	bucketApps        = []byte("apps")
)

// readJSON reads one record of bucket, or returns notFound.
func readJSON[T any](d *DB, bucket []byte, key string, notFound error) (out *T, err error) {
	err = d.db.View(func(tx *bbolt.Tx) (err error) {
		out, err = getJSON[T](tx.Bucket(bucket), []byte(key), notFound)
		return err
	})
	return out, err
}

// listJSON reads every record of bucket.
func listJSON[T any](d *DB, bucket []byte) (out []*T, err error) {
	err = d.db.View(func(tx *bbolt.Tx) (err error) {
		out, err = allJSON[T](tx.Bucket(bucket), nil)
		return err
	})
	return out, err
}

// writeJSON stores v under key in bucket.
func writeJSON(d *DB, bucket []byte, key string, v any) error {
	return d.w.update(func(tx *bbolt.Tx) error { return putJSON(tx.Bucket(bucket), []byte(key), v) })
}

// HealthAuthority implements keyserver.AuthorityStore.
func (d *DB) HealthAuthority(ctx context.Context, issuer string) (*keyserver.HealthAuthority, error) {
	h, err := readJSON[keyserver.HealthAuthority](d, bucketAuthorities, issuer, keyserver.ErrNotFound)
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
	if err := writeJSON(d, bucketAuthorities, h.Issuer, h); err != nil {
		return fmt.Errorf("put health authority %q: %w", h.Issuer, err)
	}
	return nil
}

// App implements keyserver.AuthorityStore.
func (d *DB) App(ctx context.Context, id string) (*keyserver.App, error) {
	a, err := readJSON[keyserver.App](d, bucketApps, id, keyserver.ErrNotFound)
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
	if err := writeJSON(d, bucketApps, a.ID, a); err != nil {
		return fmt.Errorf("put app %q: %w", a.ID, err)
	}
	return nil
}
