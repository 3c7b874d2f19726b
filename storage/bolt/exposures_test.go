package bolt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/bolt"
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
