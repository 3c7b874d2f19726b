package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/internal/lease"
	"github.com/candor-en/candor/keyserver"
)

// Errors of the stores, checked with errors.Is.
var (
	// ErrNotFound is returned by lookups of a configuration or batch that
	// does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLeaseHeld is lease.ErrHeld: another owner holds the window's
	// lease; skip the window, another exporter is on it.
	ErrLeaseHeld = lease.ErrHeld
	// ErrLeaseLost is returned by CompleteBatch when the lease is no longer
	// the caller's (it expired and another exporter took it): record
	// nothing; the other exporter's record wins.
	ErrLeaseLost = errors.New("lease lost")
)

// ConfigStore keeps export configurations by root.
type ConfigStore interface {
	// ExportConfigs returns every configuration, sorted by root.
	ExportConfigs(ctx context.Context) ([]*Config, error)
	// ExportConfig returns one configuration or ErrNotFound.
	ExportConfig(ctx context.Context, root string) (*Config, error)
	// UpdateExportConfig atomically reads the configuration of root (nil
	// when absent), passes it to fn and stores what fn returns. fn must
	// depend only on its argument (a store may retry it); when fn fails,
	// nothing is written and its error is returned.
	UpdateExportConfig(ctx context.Context, root string, fn func(cur *Config) (*Config, error)) (*Config, error)
}

// BatchStore keeps the records of exported batches and the outbox of
// events.
type BatchStore interface {
	// Batch returns the full record of root's batch starting at start
	// (padding and revised keys included), or ErrNotFound.
	Batch(ctx context.Context, root string, start time.Time) (*Batch, error)
	// Batches returns the records of root's batches, oldest first, without
	// Padding and Revised (the bulky part; use Batch for those).
	Batches(ctx context.Context, root string) ([]*Batch, error)
	// CompleteBatch stores b and appends events to the outbox in one
	// transaction, provided owner still holds the lease named lease; it then
	// releases the lease. It returns ErrLeaseLost, writing nothing, when
	// another owner holds the lease.
	CompleteBatch(ctx context.Context, b *Batch, lease, owner string, events []Event) error
	// DeleteBatches removes root's batch records whose window ends at or
	// before cutoff and returns them (without Padding and Revised).
	DeleteBatches(ctx context.Context, root string, cutoff time.Time) ([]*Batch, error)
	// AppendEvents adds events to the outbox.
	AppendEvents(ctx context.Context, events []Event) error
	// PendingEvents returns up to limit undelivered events, oldest first.
	PendingEvents(ctx context.Context, limit int) ([]Event, error)
	// AckEvent removes a delivered event from the outbox.
	AckEvent(ctx context.Context, id uint64) error
}

// ExposureSource is what the exporter reads and deletes of the key store.
type ExposureSource interface {
	// ScanExportExposures calls fn for every stored exposure whose created
	// time (or, when revised is true, revision time) is in [from, to), in
	// index order. Records that cannot be decoded — a key of the wrong
	// length, a damaged record — are skipped and counted in skipped. The
	// *Exposure passed to fn is reused after fn returns.
	ScanExportExposures(ctx context.Context, revised bool, from, to time.Time, fn func(*keyserver.Exposure) error) (skipped int, err error)
	// CountExportExposures returns how many records ScanExportExposures
	// would visit (bad ones included) without decoding them; the exporter
	// sizes its buffers with it.
	CountExportExposures(ctx context.Context, revised bool, from, to time.Time) (int, error)
	// DeleteExposuresCreatedBefore removes every exposure created before
	// cutoff and returns how many went.
	DeleteExposuresCreatedBefore(ctx context.Context, cutoff time.Time) (int, error)
}

// Store is everything the exporter needs of storage; storage/bolt and
// storage/redis implement it.
type Store interface {
	ConfigStore
	// lease.Store holds a lease per window, so that two exporters
	// (processes or replicas) never produce the same batch.
	lease.Store
	BatchStore
	ExposureSource
}

// Batch records one exported window of one configuration. A record exists
// only once all its files were written and synced; it holds what is needed
// to check the files and to regenerate them byte for byte.
type Batch struct {
	Root  string    `json:"root"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Files in file number order.
	Files []FileRecord `json:"files"`
	// Keys, RevisedKeys and PaddingKeys count the window's real new keys,
	// its revised keys and the padding added.
	Keys        int `json:"keys"`
	RevisedKeys int `json:"revisedKeys"`
	PaddingKeys int `json:"paddingKeys"`
	// Skipped counts store records that could not be decoded.
	Skipped int `json:"skipped,omitempty"`
	// SignatureInfos are the keys that signed the files, in signature order.
	SignatureInfos []export.SignatureInfo `json:"signatureInfos"`
	// Padding holds the padding keys, and Revised the revised keys, each as
	// the protobuf of a TemporaryExposureKeyExport with only that key list
	// (export.MarshalBin without the header). Revised keys are kept because
	// retention may delete a revised key's record (created long before)
	// while the file of its revision is still live.
	Padding []byte `json:"padding,omitempty"`
	Revised []byte `json:"revised,omitempty"`
	// Created is when the batch was recorded.
	Created time.Time `json:"created"`
}

// Window returns the batch's window.
func (b *Batch) Window() Window { return Window{Start: b.Start, End: b.End} }

// FileRecord describes one file of a batch as written.
type FileRecord struct {
	// Name is the file name in the root directory: <start>-<end>-<NNNNN>.zip.
	Name string `json:"name"`
	// Num is the file number, from 1; export.bin's end_timestamp is the
	// window end + Num − 1.
	Num       int    `json:"num"`
	ZipSHA256 Digest `json:"zipSHA256"`
	BinSHA256 Digest `json:"binSHA256"`
	Size      int64  `json:"size"`
	// Keys and RevisedKeys count the keys in the file, padding included.
	Keys        int `json:"keys"`
	RevisedKeys int `json:"revisedKeys"`
	// Signatures are the DER signatures in export.sig, in the order of the
	// batch's SignatureInfos; kept so a regenerated zip is byte-identical.
	Signatures [][]byte `json:"signatures"`
}

// Digest is a SHA-256 digest, written as lower-case hex in JSON.
type Digest [sha256.Size]byte

// String returns d in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != sha256.Size {
		return fmt.Errorf("digest: want %d hex digits, got %d", 2*sha256.Size, len(b))
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// Event is one entry of the outbox: exactly one of its pointers is set.
type Event struct {
	// ID orders events; the store assigns it.
	ID            uint64           `json:"id"`
	FilePublished *FilePublished   `json:"filePublished,omitempty"`
	Retention     *RetentionResult `json:"retention,omitempty"`
	RootAdded     *RootAdded       `json:"rootAdded,omitempty"`
}

// RootAdded describes a root new to the list of served roots (roots.txt).
type RootAdded struct {
	Root   string `json:"root"`
	Region string `json:"region"`
}

// FilePublished describes a new export file for the transparency log. It
// carries no count of real keys: with padding, the file's key count is what
// phones see, and the number of real uploads in a small window stays hidden.
type FilePublished struct {
	Root string `json:"root"`
	// Name is the path phones fetch: <root>/<start>-<end>-<NNNNN>.zip.
	Name        string                 `json:"name"`
	Region      string                 `json:"region"`
	Start       time.Time              `json:"start"`
	End         time.Time              `json:"end"`
	FileNum     int                    `json:"fileNum"`
	FileCount   int                    `json:"fileCount"`
	ZipSHA256   Digest                 `json:"zipSHA256"`
	BinSHA256   Digest                 `json:"binSHA256"`
	Size        int64                  `json:"size"`
	Keys        int                    `json:"keys"`
	RevisedKeys int                    `json:"revisedKeys"`
	SigningKeys []export.SignatureInfo `json:"signingKeys"`
}

// RetentionResult is what one retention run deleted.
type RetentionResult struct {
	// Cutoff: keys created before it and files of windows ending at or
	// before it were deleted.
	Cutoff       time.Time `json:"cutoff"`
	KeysRemoved  int       `json:"keysRemoved"`
	FilesRemoved int       `json:"filesRemoved"`
	// Files are the deleted files as index lines (<root>/<name>), sorted.
	Files []string `json:"files,omitempty"`
}

// Events are the hooks the transparency log attaches to. A nil hook drops
// its events. A hook that fails gets the event again on the next pass, so
// hooks must tolerate repeats (the file name, cutoff or root identifies an
// event).
type Events struct {
	OnFilePublished func(context.Context, FilePublished) error
	OnRetention     func(context.Context, RetentionResult) error
	OnRootAdded     func(context.Context, RootAdded) error
}
