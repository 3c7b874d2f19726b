package bolt_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/storage/internal/record"
	"github.com/candor-en/candor/storage/storetest"
)

func openDB(t *testing.T, dir string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.TestExposures(t, func(t *testing.T) storetest.ExposureStore { return openDB(t, t.TempDir()) })
	storetest.TestAuthorities(t, func(t *testing.T) keyserver.AuthorityStore { return openDB(t, t.TempDir()) })
}

// Acknowledged publishes survive a restart, and the in-memory key index is
// rebuilt from the file so a re-upload is seen as existing.
func TestExposuresSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	e := &keyserver.Exposure{Key: [16]byte{1, 2, 3}, IntervalNumber: 100, IntervalCount: 144, Region: "R", CreatedAt: created}
	err = db.Publish(ctx, [][16]byte{e.Key}, func(map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) {
		return &keyserver.Change{Insert: []*keyserver.Exposure{e}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	var seen int
	err = db.Publish(ctx, [][16]byte{e.Key}, func(existing map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) {
		seen = len(existing)
		return &keyserver.Change{}, nil
	})
	if err != nil || seen != 1 {
		t.Fatalf("after reopen the key was seen %d times (%v), want 1", seen, err)
	}
}

// A second process cannot open a store that a server holds.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	openDB(t, dir)
	if _, err := bolt.Open(dir, bolt.Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

// A file written with the old layout, (created, sequence number), loses its
// upload order on Open: every exposure moves to a random location, stays
// readable and revisable, and the order attack does no better than chance.
func TestSequentialExposuresRekeyedOnOpen(t *testing.T) {
	const uploads, perUpload = 40, 14
	dir := t.TempDir()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	revisedAt := created.Add(2 * time.Hour)
	var all [][][16]byte
	err = db.Bolt().Update(func(tx *bbolt.Tx) error {
		b, revised := tx.Bucket([]byte("exposures")), tx.Bucket([]byte("exposures_revised"))
		seq := uint64(0)
		for range uploads {
			var keys [][16]byte
			for range perUpload {
				seq++
				e := &keyserver.Exposure{IntervalNumber: 100, IntervalCount: 144, Region: "R", CreatedAt: created}
				rand.Read(e.Key[:])
				if seq == 1 {
					e.Revised, e.RevisedReportType, e.RevisedAt = true, keyserver.ReportConfirmed, revisedAt
				}
				loc := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(created.Unix())), seq)
				if err := b.Put(loc, record.EncodeExposure(e)); err != nil {
					return err
				}
				if e.Revised {
					if err := revised.Put(append(binary.BigEndian.AppendUint64(nil, uint64(revisedAt.Unix())), loc...), nil); err != nil {
						return err
					}
				}
				keys = append(keys, e.Key)
			}
			all = append(all, keys)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	ctx := context.Background()
	var stored [][16]byte
	if _, err := db.ScanExportExposures(ctx, false, created, created.Add(time.Hour), func(e *keyserver.Exposure) error {
		stored = append(stored, e.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l, err := storetest.MatchByOrder(stored, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Error(err)
	}
	if _, err := db.Exposure(ctx, all[uploads-1][perUpload-1]); err != nil {
		t.Errorf("a moved exposure is not found: %v", err)
	}
	var revised int
	db.ScanExportExposures(ctx, true, revisedAt, revisedAt.Add(time.Hour), func(e *keyserver.Exposure) error {
		if e.Key != all[0][0] {
			t.Errorf("revised %x, want %x", e.Key, all[0][0])
		}
		revised++
		return nil
	})
	if revised != 1 {
		t.Errorf("%d revised exposures after the move, want 1", revised)
	}
}
