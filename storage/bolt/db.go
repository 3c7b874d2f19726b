// Package bolt stores Candor's data in one embedded bbolt file: the default
// backend of `candor serve`, durable on every acknowledged write (fsync, with
// concurrent writes grouped into one transaction).
//
// DB implements the store interfaces of the domain packages (keyserver,
// keyset, …); the conformance tests in storage/storetest run against it.
package bolt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the store's file inside the data directory.
const FileName = "candor.db"

// DB is the bbolt-backed store.
type DB struct {
	db *bbolt.DB

	// w runs every write transaction (see commit.go).
	w *committer

	// The exposures' key index and, for write transactions only, the
	// open runs and the keys added in the transaction (see exposures.go).
	indexMu sync.RWMutex
	index   map[keyBytes]location
	runs    runs
	added   map[keyBytes]location
}

// Options tune the store.
type Options struct {
	// LockTimeout is how long Open waits for another process's lock
	// (bbolt allows one process per file). Zero waits one second.
	LockTimeout time.Duration
	// ReadOnly opens the file without taking the write lock.
	ReadOnly bool
}

// ErrLocked is returned by Open when another process holds the file,
// typically a running `candor serve`: reach it through its admin socket.
var ErrLocked = errors.New("store is locked by another process")

var allBuckets = [][]byte{
	bucketExposures, bucketExposuresRevised,
	bucketAuthorities, bucketApps, bucketKeysets,
	bucketExportConfigs, bucketExportBatches, bucketExportBatchKeys, bucketExportLeases, bucketExportEvents,
	bucketVerRealms, bucketVerAPIKeys, bucketVerCodes, bucketVerCodeHashes, bucketVerHashExpiry,
	bucketVerCodeExpiry, bucketVerTokensUsed, bucketVerStats, bucketVerSecrets,
	bucketAcctUsers, bucketAcctEmails, bucketAcctSessions, bucketAcctThrottle, bucketAcctAudit,
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	path := filepath.Join(dir, FileName)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        opts.LockTimeout,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
		ReadOnly:       opts.ReadOnly,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if !opts.ReadOnly {
		err = db.Update(func(tx *bbolt.Tx) error {
			for _, b := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open store: create buckets: %w", err)
		}
	}
	d := &DB{db: db, runs: runs{}}
	d.w = &committer{db: db, begin: func(*bbolt.Tx) { d.added = nil }}
	if err := d.loadIndex(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: index exposures: %w", err)
	}
	return d, nil
}

// Close waits for the writes in progress, refuses later ones, and closes
// the file; writes already acknowledged are on disk.
func (d *DB) Close() error {
	d.w.close()
	return d.db.Close()
}

// Bolt returns the underlying handle, for adapters in this package's
// sub-packages and for tests.
func (d *DB) Bolt() *bbolt.DB { return d.db }
