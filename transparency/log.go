package transparency

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyset"
)

// Defaults of Options. At these values an entry is durable about
// BatchMaxAge after Append and covered by a published checkpoint at most
// about BatchMaxAge + CheckpointInterval after it (see docs/PERFORMANCE.md).
const (
	// DefaultBatchMaxAge is how long an entry waits for others to share its
	// write to disk.
	DefaultBatchMaxAge = 100 * time.Millisecond
	// DefaultBatchMaxSize is the most entries written together.
	DefaultBatchMaxSize = 256
	// DefaultCheckpointInterval is how often a new checkpoint may be
	// published while the log grows.
	DefaultCheckpointInterval = 500 * time.Millisecond
	// MinCheckpointInterval is the shortest interval Tessera's POSIX
	// driver accepts.
	MinCheckpointInterval = 100 * time.Millisecond
	// publishedPoll is how often AwaitPublished reads the checkpoint.
	publishedPoll = 10 * time.Millisecond
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("transparency: log is closed")

// Options configure a Log. Dir, Driver, Keys and Master are required;
// zero values of the others take the defaults.
type Options struct {
	// Dir is the log's directory (typically <data>/log): the tlog-tiles
	// files (checkpoint, tile/…), served as they are, and Tessera's private
	// .state/ directory, never served.
	Dir string
	// Driver is the Tessera storage driver that writes Dir: the POSIX
	// driver, posix.New(ctx, posix.Config{Path: Dir}). Handler serves Dir
	// as a tlog-tiles tree, so the driver must write that layout there.
	Driver tessera.Driver
	// Origin names the log in its checkpoints. Empty means the stored
	// origin, or DefaultOrigin(Host) for a new log. It cannot change over
	// the life of a log.
	Origin string
	// Host is the host name of a new log's default origin; os.Hostname()
	// when empty.
	Host string
	// Keys and Master keep the checkpoint signing key: an Ed25519 seed
	// sealed with Master, stored under KeyName (DefaultKeyName).
	Keys    keyset.Store
	Master  tink.AEAD
	KeyName string
	// BatchMaxAge, BatchMaxSize and CheckpointInterval tune Tessera.
	BatchMaxAge        time.Duration
	BatchMaxSize       uint
	CheckpointInterval time.Duration
	// Now is the clock of entry times (time.Now when nil). Tessera's own
	// timers (batching, checkpoint age) use the wall clock.
	Now func() time.Time
	// Log receives warnings; discarded when nil.
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.KeyName == "" {
		o.KeyName = DefaultKeyName
	}
	if o.BatchMaxAge == 0 {
		o.BatchMaxAge = DefaultBatchMaxAge
	}
	if o.BatchMaxSize == 0 {
		o.BatchMaxSize = DefaultBatchMaxSize
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Log is the transparency log of data use: an append-only Tessera log on
// the local file system whose checkpoints are signed with the log's Ed25519
// key. It keeps every entry in memory, indexed, for the public page and to
// log each event once. It is safe for concurrent use.
type Log struct {
	opts     Options
	origin   string
	verifier note.Verifier
	vkey     string
	appender *tessera.Appender
	reader   tessera.LogReader
	shutdown func(context.Context) error
	cancel   context.CancelFunc

	mu       sync.Mutex
	closed   bool
	records  []Record // by index
	byID     map[string]uint64
	keys     map[string]logentry.SigningKey // purpose/keyId/keyVersion → first logged key
	pending  map[string]*pending
	inflight sync.WaitGroup
}

// Record is one entry of the log.
type Record struct {
	Index uint64
	Entry logentry.Entry
	// Raw is the entry as logged.
	Raw []byte
	// DecodeErr, when not empty, says why Raw did not decode; Entry is
	// then zero.
	DecodeErr string
}

type pending struct {
	done  chan struct{}
	index uint64
	err   error
}

// Open opens the log in opts.Dir, creating the log and its key on first
// use, and reads its entries.
func Open(ctx context.Context, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	if opts.Dir == "" || opts.Driver == nil || opts.Keys == nil || opts.Master == nil {
		return nil, errors.New("transparency: Options.Dir, Driver, Keys and Master are required")
	}
	if opts.CheckpointInterval < MinCheckpointInterval {
		return nil, fmt.Errorf("transparency: checkpoint interval %v is under the minimum %v", opts.CheckpointInterval, MinCheckpointInterval)
	}
	if opts.Origin != "" {
		if err := checkOrigin(opts.Origin); err != nil {
			return nil, err
		}
	}
	host := opts.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	key, origin, err := loadKey(ctx, opts.Keys, opts.Master, opts.KeyName, opts.Origin, host, opts.Now())
	if err != nil {
		return nil, err
	}
	sig, ver, vkey, err := newSigner(origin, key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("transparency: log dir: %w", err)
	}
	// A checkpoint left by another key or origin would make this a
	// different log under the same directory: refuse rather than mix them.
	if raw, err := os.ReadFile(filepath.Join(opts.Dir, layout.CheckpointPath)); err == nil {
		if _, _, _, err := flog.ParseCheckpoint(raw, origin, ver); err != nil {
			return nil, fmt.Errorf("transparency: the checkpoint in %s is not this log's (origin %s): %w", opts.Dir, origin, err)
		}
	}
	// The appender's background work must outlive the caller's context
	// (a server's is cancelled at the start of its shutdown); Close ends it.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ao := tessera.NewAppendOptions().
		WithCheckpointSigner(sig).
		WithBatching(opts.BatchMaxSize, opts.BatchMaxAge).
		WithCheckpointInterval(opts.CheckpointInterval)
	app, shutdown, reader, err := tessera.NewAppender(bg, opts.Driver, ao)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("transparency: open %s: %w", opts.Dir, err)
	}
	l := &Log{
		opts: opts, origin: origin, verifier: ver, vkey: vkey,
		appender: app, reader: reader, shutdown: shutdown, cancel: cancel,
		byID: map[string]uint64{}, keys: map[string]logentry.SigningKey{}, pending: map[string]*pending{},
	}
	if err := l.load(ctx); err != nil {
		cancel()
		return nil, err
	}
	return l, nil
}

// load reads every integrated entry into the index.
func (l *Log) load(ctx context.Context) error {
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return fmt.Errorf("transparency: log size: %w", err)
	}
	for i := uint64(0); i*layout.EntryBundleWidth < size; i++ {
		p := layout.PartialTileSize(0, i, size)
		raw, err := l.reader.ReadEntryBundle(ctx, i, p)
		if err != nil {
			return fmt.Errorf("transparency: read entry bundle %d: %w", i, err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fmt.Errorf("transparency: entry bundle %d: %w", i, err)
		}
		want := int(p)
		if p == 0 {
			want = layout.EntryBundleWidth
		}
		if len(b.Entries) < want {
			return fmt.Errorf("transparency: entry bundle %d holds %d entries, want %d", i, len(b.Entries), want)
		}
		for j, data := range b.Entries[:want] {
			l.insertLocked(decodeRecord(i*layout.EntryBundleWidth+uint64(j), data))
		}
	}
	return nil
}

func decodeRecord(index uint64, data []byte) Record {
	r := Record{Index: index, Raw: data}
	e, err := logentry.Unmarshal(data)
	if err != nil {
		r.DecodeErr = err.Error()
		return r
	}
	r.Entry = e
	return r
}

// insertLocked adds r to the index; l.mu is held (or l is not shared yet).
func (l *Log) insertLocked(r Record) {
	n := len(l.records)
	if n == 0 || l.records[n-1].Index < r.Index {
		l.records = append(l.records, r)
	} else {
		i, found := slices.BinarySearchFunc(l.records, r.Index, func(x Record, idx uint64) int {
			return cmpUint64(x.Index, idx)
		})
		if found {
			return
		}
		l.records = slices.Insert(l.records, i, r)
	}
	if r.DecodeErr != "" {
		return
	}
	if id, err := r.Entry.Identity(); err == nil {
		if _, dup := l.byID[id]; !dup {
			l.byID[id] = r.Index
		}
	}
	if k, ok := signingKeyOf(r.Entry.Body); ok {
		if _, seen := l.keys[keyIndex(k.Purpose, k.KeyID, k.KeyVersion)]; !seen {
			l.keys[keyIndex(k.Purpose, k.KeyID, k.KeyVersion)] = k
		}
	}
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// signingKeyOf returns the key that an added or rotated signing key entry
// puts into use.
func signingKeyOf(b logentry.Body) (logentry.SigningKey, bool) {
	switch k := b.(type) {
	case logentry.SigningKeyAdded:
		return k.SigningKey, true
	case logentry.SigningKeyRotated:
		return k.SigningKey, true
	}
	return logentry.SigningKey{}, false
}

func keyIndex(purpose, id, version string) string { return purpose + "\x00" + id + "\x00" + version }

// Origin returns the log's origin, the first line of its checkpoints.
func (l *Log) Origin() string { return l.origin }

// VerifierKey returns the note verifier key of the checkpoints,
// "<origin>+<key hash>+<base64 Ed25519 key>": what auditors, tlog clients
// and witnesses are configured with.
func (l *Log) VerifierKey() string { return l.vkey }

// Verifier returns the checkpoints' note verifier.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.opts.Dir }

// Now returns the time of the log's clock.
func (l *Log) Now() time.Time { return l.opts.Now() }

// Record logs body as an entry recorded now; see Append.
func (l *Log) Record(ctx context.Context, body logentry.Body) (uint64, error) {
	return l.Append(ctx, logentry.New(l.opts.Now(), body))
}

// Append adds e to the log and returns its index once it is durable:
// written, fsynced and integrated into the tree. A published checkpoint
// covers it shortly after (AwaitPublished waits for that).
//
// An event is logged once: when an entry with the same identity
// (logentry.Entry.Identity) is in the log or being added, Append returns
// that entry's index instead, so hooks that deliver events at least once
// may call it again. If ctx ends first Append returns its error, but the
// entry may still be logged.
func (l *Log) Append(ctx context.Context, e logentry.Entry) (uint64, error) {
	raw, err := e.Marshal()
	if err != nil {
		return 0, fmt.Errorf("transparency: %w", err)
	}
	id, err := e.Identity()
	if err != nil {
		return 0, fmt.Errorf("transparency: %w", err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	if idx, ok := l.byID[id]; ok {
		l.mu.Unlock()
		return idx, nil
	}
	p, ok := l.pending[id]
	if !ok {
		p = &pending{done: make(chan struct{})}
		l.pending[id] = p
		l.inflight.Add(1)
	}
	l.mu.Unlock()
	if !ok {
		fut := l.appender.Add(context.WithoutCancel(ctx), tessera.NewEntry(raw))
		go l.complete(id, e, raw, p, fut)
	}
	select {
	case <-p.done:
		return p.index, p.err
	case <-ctx.Done():
		return 0, fmt.Errorf("transparency: append %s: %w", e.Type, ctx.Err())
	}
}

// complete waits for an added entry to be durable and indexes it.
func (l *Log) complete(id string, e logentry.Entry, raw []byte, p *pending, fut tessera.IndexFuture) {
	defer l.inflight.Done()
	idx, err := fut()
	l.mu.Lock()
	delete(l.pending, id)
	if err == nil {
		l.insertLocked(Record{Index: idx.Index, Entry: e, Raw: raw})
	}
	l.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("transparency: append %s: %w", e.Type, err)
		l.opts.Log.Warn("transparency log append failed", "type", e.Type, "err", err)
	}
	p.index, p.err = idx.Index, err
	close(p.done)
}

// Lookup returns the index of the entry that records the same event as e,
// if it is logged.
func (l *Log) Lookup(e logentry.Entry) (uint64, bool) {
	id, err := e.Identity()
	if err != nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, ok := l.byID[id]
	return idx, ok
}

// SigningKey returns the first key logged by a signing_key.added or
// signing_key.rotated entry for purpose, key id and version.
func (l *Log) SigningKey(purpose, keyID, keyVersion string) (logentry.SigningKey, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.keys[keyIndex(purpose, keyID, keyVersion)]
	return k, ok
}

// Checkpoint is a verified checkpoint of the log.
type Checkpoint struct {
	// Raw is the signed note as published.
	Raw  []byte
	Size uint64
	// Hash is the root hash of the tree of Size entries.
	Hash []byte
}

// Checkpoint returns the latest published checkpoint, verified with the
// log's key.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("transparency: read checkpoint: %w", err)
	}
	cp, _, _, err := flog.ParseCheckpoint(raw, l.origin, l.verifier)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("transparency: checkpoint: %w", err)
	}
	return Checkpoint{Raw: raw, Size: cp.Size, Hash: cp.Hash}, nil
}

// AwaitPublished waits until a published checkpoint covers the entry at
// index and returns that checkpoint.
func (l *Log) AwaitPublished(ctx context.Context, index uint64) (Checkpoint, error) {
	t := time.NewTicker(publishedPoll)
	defer t.Stop()
	for {
		cp, err := l.Checkpoint(ctx)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return Checkpoint{}, err
		}
		if err == nil && cp.Size > index {
			return cp, nil
		}
		select {
		case <-ctx.Done():
			return Checkpoint{}, fmt.Errorf("transparency: await checkpoint for entry %d: %w", index, ctx.Err())
		case <-t.C:
		}
	}
}

// Entry returns the entry at index if it is in the log.
func (l *Log) Entry(index uint64) (Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, found := slices.BinarySearchFunc(l.records, index, func(x Record, idx uint64) int { return cmpUint64(x.Index, idx) })
	if !found {
		return Record{}, false
	}
	return l.records[i], true
}

// Size returns the number of durable entries (some may not be covered by a
// published checkpoint yet).
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.records))
}

// Each calls fn with the entries below size, newest first, until fn returns
// false. fn runs with the log's lock held: it must be quick and must not
// call the Log.
func (l *Log) Each(size uint64, fn func(Record) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.records) - 1; i >= 0; i-- {
		if l.records[i].Index >= size {
			continue
		}
		if !fn(l.records[i]) {
			return
		}
	}
}

// Close waits for entries being added, then for a published checkpoint that
// covers every entry, and stops the log's background work. Append fails
// with ErrClosed afterwards. Every entry Append acknowledged is durable
// whether or not Close runs: without it the next Open publishes the
// checkpoint.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	defer l.cancel()
	done := make(chan struct{})
	go func() { l.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("transparency: close: %w", ctx.Err())
	}
	if err := l.shutdown(ctx); err != nil {
		return fmt.Errorf("transparency: close: %w", err)
	}
	return nil
}
