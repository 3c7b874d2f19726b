package bolt

import (
	"encoding/json"

	bbolt "go.etcd.io/bbolt"
)

// Records other than exposures are stored as JSON values in buckets; these
// read and write one value, or every value of a bucket.

// getJSON decodes the value under key in b, or returns notFound (the
// caller's domain error) if there is none.
func getJSON[T any](b *bbolt.Bucket, key []byte, notFound error) (*T, error) {
	v := b.Get(key)
	if v == nil {
		return nil, notFound
	}
	var x T
	if err := json.Unmarshal(v, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// putJSON stores v as JSON under key in b.
func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// allJSON decodes every value of b for which keep (if not nil) is true, in
// key order.
func allJSON[T any](b *bbolt.Bucket, keep func(*T) bool) ([]*T, error) {
	var out []*T
	err := b.ForEach(func(_, v []byte) error {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return err
		}
		if keep == nil || keep(&x) {
			out = append(out, &x)
		}
		return nil
	})
	return out, err
}
