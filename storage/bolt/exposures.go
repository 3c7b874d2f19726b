package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/internal/record"
)

// Exposures are keyed by their location: the coarse created time (8 bytes,
// Unix seconds, big endian), a run (3 random bytes, never all zero) and 5
// random bytes. The random parts keep upload order out of the file: a
// window's keys go into runs of at most runSize keys, each run at a random
// place in the window and each key at a random place in its run, so the keys
// of one upload are neither consecutive nor in upload order, and the order of
// runs says nothing of time. (A sequence number made one upload's keys a
// consecutive run, in upload order, that matched claimed codes sorted by
// time.) Runs bound the cost: a commit writes into the pages of one run (a
// few dozen), where keys at random places in the whole window would dirty a
// page per key and write megabytes per commit. The key-bytes → location
// index that uniqueness and revisions need lives in memory, built from the
// bucket on Open.
var (
	// exposures: location → record (including the key bytes).
	bucketExposures = []byte("exposures")
	// exposures_revised: revised at (8 bytes) ‖ location → empty.
	bucketExposuresRevised = []byte("exposures_revised")
)

const locLen = 16

type location [locLen]byte

// runSize bounds the keys of one run: the keys uploaded while a run is
// open (at least runSize/30 uploads; 73 of 14 keys) are shuffled among each
// other, at the cost of writing into the run's pages, about runSize/25, in
// every commit (docs/KEYSERVER.md has figures).
const runSize = 1024

// runs hands out locations: the open run of each window.
type runs map[int64]*run

type run struct {
	id [3]byte
	n  int
}

// location returns a free location in b for an exposure created at created.
func (rs runs) location(b *bbolt.Bucket, created time.Time) location {
	w := created.Unix()
	r := rs[w]
	if r == nil || r.n >= runSize {
		if len(rs) > 64 { // windows long closed
			clear(rs)
		}
		r = &run{}
		for r.id == [3]byte{} { // zero is the sequential layout's
			rand.Read(r.id[:])
		}
		rs[w] = r
	}
	r.n++
	var l location
	binary.BigEndian.PutUint64(l[:8], uint64(w))
	copy(l[8:11], r.id[:])
	for {
		rand.Read(l[11:])
		if b.Get(l[:]) == nil {
			return l
		}
	}
}

type keyBytes = [keyserver.KeyLength]byte

// loadIndex builds the in-memory key index from the exposures bucket, and
// moves exposures of the sequential layout to runs (unless read-only).
func (d *DB) loadIndex() error {
	d.index = make(map[keyBytes]location)
	var old []location
	err := d.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketExposures).ForEach(func(k, v []byte) error {
			if len(k) != locLen || len(v) < 1+keyserver.KeyLength {
				return nil // counted and skipped by readers
			}
			var key keyBytes
			copy(key[:], v[1:])
			d.index[key] = location(k)
			if sequential(k) {
				old = append(old, location(k))
			}
			return nil
		})
	})
	if err != nil || len(old) == 0 || d.db.IsReadOnly() {
		return err
	}
	return d.rekeySequential(old)
}

// sequential reports whether l is a location of the layout before runs,
// (created, sequence number): a sequence number is below 2^40, a run's
// location (whose run ID is not zero) never.
func sequential(l []byte) bool {
	return len(l) == locLen && binary.BigEndian.Uint64(l[8:]) < 1<<40
}

// rekeySequential moves the exposures stored at the sequential locations
// old to runs (with their revision entries, and in the index), in bounded
// transactions, so that a file written before runs loses its upload order
// too. It runs on Open; afterwards there is nothing left to move.
func (d *DB) rekeySequential(old []location) error {
	var err error
	const chunk = 10000
	rs := runs{}
	for len(old) > 0 && err == nil {
		n := min(chunk, len(old))
		moved := map[keyBytes]location{}
		err = d.w.update(func(tx *bbolt.Tx) error {
			clear(moved)
			b, revised := tx.Bucket(bucketExposures), tx.Bucket(bucketExposuresRevised)
			for _, k := range old[:n] {
				v := bytes.Clone(b.Get(k[:]))
				if err := b.Delete(k[:]); err != nil {
					return err
				}
				loc := rs.location(b, time.Unix(int64(binary.BigEndian.Uint64(k[:8])), 0))
				if err := b.Put(loc[:], v); err != nil {
					return err
				}
				var key keyBytes
				copy(key[:], v[1:])
				moved[key] = loc
				if e, err := decodeExposure(v); err == nil && e.Revised {
					if err := revised.Delete(timeKey(e.RevisedAt, k[:])); err != nil {
						return err
					}
					if err := revised.Put(timeKey(e.RevisedAt, loc[:]), nil); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err == nil {
			maps.Copy(d.index, moved)
		}
		old = old[n:]
	}
	if err != nil {
		return fmt.Errorf("move exposures to runs: %w", err)
	}
	return nil
}

// txAdded returns the locations given in the write transaction tx to keys
// not yet in the index (a later publish in the same transaction must see
// them); they join the index once tx commits. Only write transactions,
// which bbolt runs one at a time, touch it.
func (d *DB) txAdded(tx *bbolt.Tx) map[keyBytes]location {
	if d.added == nil {
		added := make(map[keyBytes]location)
		d.added = added
		tx.OnCommit(func() {
			d.indexMu.Lock()
			maps.Copy(d.index, added)
			d.indexMu.Unlock()
		})
	}
	return d.added
}

// Publish implements keyserver.ExposureStore. Concurrent publishes share one
// transaction and one fsync; a nil error means the change is on disk.
func (d *DB) Publish(ctx context.Context, keys [][keyserver.KeyLength]byte, plan func(map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var refused error
	// Not ctx from here: once queued, the outcome is decided by the writer.
	err := d.w.update(func(tx *bbolt.Tx) error {
		refused = nil
		b := tx.Bucket(bucketExposures)
		// Inserts at random places within a run: splitting full pages at
		// 90% rather than half wrote a fifth fewer pages.
		b.FillPercent = 0.9
		added := d.txAdded(tx)
		existing := make(map[keyBytes]*keyserver.Exposure)
		locs := make(map[keyBytes]location)
		d.indexMu.RLock()
		for _, k := range keys {
			loc, ok := added[k]
			if !ok {
				loc, ok = d.index[k]
			}
			if !ok {
				continue
			}
			v := b.Get(loc[:])
			if v == nil {
				continue // removed by retention
			}
			e, err := decodeExposure(v)
			if err != nil {
				d.indexMu.RUnlock()
				return fmt.Errorf("exposure at %x: %w", loc, err)
			}
			existing[k], locs[k] = e, loc
		}
		d.indexMu.RUnlock()
		ch, err := plan(existing)
		if err != nil {
			refused = err // this publish writes nothing
			return nil
		}
		for _, e := range ch.Insert {
			loc := d.runs.location(b, e.CreatedAt)
			if err := b.Put(loc[:], encodeExposure(e)); err != nil {
				return err
			}
			added[e.Key] = loc
		}
		revised := tx.Bucket(bucketExposuresRevised)
		for _, e := range ch.Revise {
			loc, ok := locs[e.Key]
			if !ok {
				return fmt.Errorf("revision of a key that is not stored")
			}
			if err := b.Put(loc[:], encodeExposure(e)); err != nil {
				return err
			}
			if err := revised.Put(timeKey(e.RevisedAt, loc[:]), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		var perr *api.Error
		if errors.As(err, &perr) {
			return err
		}
		return fmt.Errorf("publish %d keys: %w", len(keys), err)
	}
	return nil
}

// Exposure returns one stored exposure.
func (d *DB) Exposure(ctx context.Context, key [keyserver.KeyLength]byte) (*keyserver.Exposure, error) {
	d.indexMu.RLock()
	loc, ok := d.index[key]
	d.indexMu.RUnlock()
	if !ok {
		return nil, keyserver.ErrNotFound
	}
	var e *keyserver.Exposure
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketExposures).Get(loc[:])
		if v == nil {
			return keyserver.ErrNotFound
		}
		var err error
		e, err = decodeExposure(v)
		return err
	})
	return e, err
}

// ErrBadRecord marks a stored exposure that cannot be decoded (for example a
// truncated record); scans skip and count such records.
var ErrBadRecord = record.ErrBadRecord

// DeleteExposuresCreatedBefore removes every exposure created before cutoff
// and returns how many went. It works in bounded transactions so a large
// deletion does not hold up publishing for long.
func (d *DB) DeleteExposuresCreatedBefore(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	end := timeKey(cutoff, nil)
	const chunk = 10000
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		gone := map[keyBytes]location{}
		n := 0
		err := d.w.update(func(tx *bbolt.Tx) error {
			clear(gone)
			n = 0
			revised := tx.Bucket(bucketExposuresRevised)
			c := tx.Bucket(bucketExposures).Cursor()
			for k, v := c.First(); k != nil && bytes.Compare(k, end) < 0 && n < chunk; k, v = c.First() {
				loc := location(k)
				if e, err := decodeExposure(v); err == nil {
					gone[e.Key] = loc
					if e.Revised {
						if err := revised.Delete(timeKey(e.RevisedAt, loc[:])); err != nil {
							return err
						}
					}
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("delete exposures before %s: %w", cutoff.Format(time.RFC3339), err)
		}
		d.indexMu.Lock()
		for k, loc := range gone {
			if d.index[k] == loc {
				delete(d.index, k)
			}
		}
		d.indexMu.Unlock()
		total += n
		if n < chunk {
			return total, nil
		}
	}
}

func timeKey(t time.Time, suffix []byte) []byte {
	b := make([]byte, 8, 8+len(suffix))
	binary.BigEndian.PutUint64(b, uint64(t.Unix()))
	return append(b, suffix...)
}

func encodeExposure(e *keyserver.Exposure) []byte { return record.EncodeExposure(e) }

func decodeExposure(b []byte) (*keyserver.Exposure, error) { return record.DecodeExposure(b) }
