package exporter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
)

// Options tune an Exporter. Zero fields take the defaults.
type Options struct {
	// Dir holds one directory per root (typically <data>/exports).
	// Required.
	Dir string
	// Retention is how long keys and files are kept (DefaultRetention); at
	// least MinRetention.
	Retention time.Duration
	// LeaseTTL is how long a batch lease lasts (DefaultLeaseTTL). A batch
	// must be written within it.
	LeaseTTL time.Duration
	// Owner names this exporter in leases; a random name when empty.
	Owner string
	// TruncateWindow is the key server's publish window
	// (keyserver.DefaultTruncateWindow); periods are multiples of it.
	TruncateWindow time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives warnings and a line per published file; discarded when
	// nil.
	Log *slog.Logger
	// Events are the transparency log's hooks.
	Events Events
	// Registerer receives the metrics; they are not registered when nil.
	Registerer prometheus.Registerer
}

// Exporter produces, indexes and expires the export files of every
// configuration in its store. It is safe for concurrent use; passes and
// retention runs of one Exporter take turns, and leases keep exporters in
// other processes off the batches it is producing.
type Exporter struct {
	store Store
	keys  Keys
	opts  Options
	m     *metrics

	mu sync.Mutex // one pass or retention run at a time
	// digests remembers what the files hold; the Handler shares it.
	digests *digestCache
	// recorded holds the recorded SHA-256 of the files of each root's
	// live windows as of its last index refresh, by root and index line,
	// for the Handler.
	recordedMu sync.RWMutex
	recorded   map[string]map[string]Digest
	// repair asks RunRepairs for a pass (the Handler found a damaged file).
	repair chan struct{}
	// crash, when set by tests, is called at each step of the work; an
	// error stops everything at that point as if the process died: no
	// clean-up, leases kept, the index not rewritten.
	crash func(step string) error
}

// New returns an Exporter over store, signing with keys.
func New(store Store, keys Keys, opts Options) (*Exporter, error) {
	if opts.Dir == "" {
		return nil, errors.New("exporter: Options.Dir is required")
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if err := ValidateRetention(opts.Retention); err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.TruncateWindow == 0 {
		opts.TruncateWindow = keyserver.DefaultTruncateWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Owner == "" {
		host, _ := os.Hostname()
		var rnd [4]byte
		rand.Read(rnd[:])
		opts.Owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(rnd[:]))
	}
	if err := os.MkdirAll(opts.Dir, dirPerm); err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	return &Exporter{
		store:    store,
		keys:     keys,
		opts:     opts,
		m:        newMetrics(opts.Registerer),
		digests:  newDigestCache(),
		recorded: map[string]map[string]Digest{},
		repair:   make(chan struct{}, 1),
	}, nil
}

// Dir returns the directory of the roots.
func (x *Exporter) Dir() string { return x.opts.Dir }

// Retention returns the retention period.
func (x *Exporter) Retention() time.Duration { return x.opts.Retention }

// PassResult summarizes one export pass.
type PassResult struct {
	// Cutoff is the retention cutoff: nothing ending at or before it is
	// exported or listed.
	Cutoff time.Time    `json:"cutoff"`
	Roots  []RootResult `json:"roots"`
}

// RootResult is what a pass did for one configuration.
type RootResult struct {
	Root string `json:"root"`
	// Batches and Files count the windows exported and files written.
	Batches int `json:"batches"`
	Files   int `json:"files"`
	// Keys, RevisedKeys and PaddingKeys count what the new files hold.
	Keys        int `json:"keys"`
	RevisedKeys int `json:"revisedKeys"`
	PaddingKeys int `json:"paddingKeys"`
	// Skipped counts store records that could not be decoded.
	Skipped int `json:"skipped"`
	// LeaseHeld counts windows left to another exporter.
	LeaseHeld int `json:"leaseHeld"`
	// Listed is the number of files in index.txt after the pass.
	Listed int `json:"listed"`
	// Regenerated counts recorded files found missing or damaged and
	// rewritten; Unavailable those that could not be and are not listed.
	Regenerated int `json:"regenerated"`
	Unavailable int `json:"unavailable"`
}

// simulatedCrash is what a test's crash hook returned.
type simulatedCrash struct{ err error }

func (c simulatedCrash) Error() string { return "simulated crash: " + c.err.Error() }
func (c simulatedCrash) Unwrap() error { return c.err }

func (x *Exporter) step(name string) error {
	if x.crash == nil {
		return nil
	}
	if err := x.crash(name); err != nil {
		return simulatedCrash{err}
	}
	return nil
}

func isCrash(err error) bool {
	var c simulatedCrash
	return errors.As(err, &c)
}

// Pass runs one export pass at the current time.
func (x *Exporter) Pass(ctx context.Context) (*PassResult, error) {
	return x.PassAt(ctx, x.opts.Now())
}

// PassAt runs one export pass as if the time were now: for every
// configuration, it exports every window that is due and not yet recorded,
// then rebuilds index.txt from the recorded batches (regenerating missing or
// damaged files), and finally delivers pending events. A failing
// configuration does not stop the others; the errors are joined.
//
// A now later than the real time exports windows that are still open, and
// keys published into them afterwards are never exported: only tests and
// demos do that.
func (x *Exporter) PassAt(ctx context.Context, now time.Time) (*PassResult, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	began := time.Now()
	now = now.UTC()
	res, err := x.pass(ctx, now)
	x.m.passDuration.Observe(time.Since(began).Seconds())
	if err != nil {
		x.m.passes.WithLabelValues("error").Inc()
	} else {
		x.m.passes.WithLabelValues("ok").Inc()
	}
	return res, err
}

func (x *Exporter) pass(ctx context.Context, now time.Time) (*PassResult, error) {
	configs, err := x.store.ExportConfigs(ctx)
	if err != nil {
		return nil, fmt.Errorf("export pass: %w", err)
	}
	cutoff := x.cutoff(configs, now)
	res := &PassResult{Cutoff: cutoff, Roots: []RootResult{}}
	var errs []error
	if err := x.publishRoots(ctx, configs); err != nil {
		errs = append(errs, err)
	}
	for _, c := range configs {
		rr, err := x.passRoot(ctx, c, cutoff, now)
		res.Roots = append(res.Roots, rr)
		if isCrash(err) {
			return res, err
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("export %s: %w", c.Root, err))
		}
	}
	if err := x.deliver(ctx); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

func (x *Exporter) cutoff(configs []*Config, now time.Time) time.Time {
	return RetentionCutoff(now, x.opts.Retention, retentionAlign(configs, x.opts.TruncateWindow))
}

func (x *Exporter) rootDir(root string) string { return filepath.Join(x.opts.Dir, root) }

func leaseName(root string, w Window) string {
	return fmt.Sprintf("export/%s/%d", root, w.Start.Unix())
}

// passRoot exports the due windows of c and rebuilds its index.
func (x *Exporter) passRoot(ctx context.Context, c *Config, cutoff, now time.Time) (RootResult, error) {
	rr := RootResult{Root: c.Root}
	if err := c.validate(x.opts.TruncateWindow); err != nil {
		return rr, err
	}
	dir := x.rootDir(c.Root)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return rr, fmt.Errorf("root directory: %w", err)
	}
	batches, err := x.store.Batches(ctx, c.Root)
	if err != nil {
		return rr, err
	}
	done := make(map[int64]bool, len(batches))
	for _, b := range batches {
		done[b.Start.Unix()] = true
	}
	var errs []error
	var pending time.Time // end + min age of the oldest due window left undone
	for _, w := range c.DueWindows(cutoff, now) {
		if done[w.Start.Unix()] {
			continue
		}
		b, err := x.exportWindow(ctx, c, dir, w, now)
		if isCrash(err) {
			return rr, err
		}
		if err != nil {
			if pending.IsZero() {
				pending = w.End.Add(c.MinWindowAge)
			}
			if errors.Is(err, ErrLeaseHeld) {
				rr.LeaseHeld++
				x.m.leaseHeld.WithLabelValues(c.Root).Inc()
				continue
			}
			errs = append(errs, fmt.Errorf("window %s: %w", w, err))
			continue
		}
		if b == nil {
			continue // no keys
		}
		rr.Batches++
		rr.Files += len(b.Files)
		rr.Keys += b.Keys
		rr.RevisedKeys += b.RevisedKeys
		rr.PaddingKeys += b.PaddingKeys
		rr.Skipped += b.Skipped
	}
	lag := 0.0
	if !pending.IsZero() {
		lag = now.Sub(pending).Seconds()
	}
	x.m.lag.WithLabelValues(c.Root).Set(lag)

	ix, err := x.refreshIndex(ctx, c, dir, cutoff, now)
	rr.Listed, rr.Regenerated, rr.Unavailable = ix.listed, ix.regenerated, ix.unavailable
	if err != nil {
		errs = append(errs, err)
	}
	return rr, errors.Join(errs...)
}

// removeWindowFiles deletes the zips of window w from dir, and the
// temporary files of an attempt killed while writing them. The caller
// holds the window's lease, so no live writer owns them.
func (x *Exporter) removeWindowFiles(dir string, w Window) error {
	prefix := w.String() + "-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		zip := strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".zip")
		if !zip && !strings.HasPrefix(e.Name(), tempPrefix+prefix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stray %s: %w", e.Name(), err)
		}
		x.digests.forget(path)
		x.opts.Log.Info("export: removed file of an unfinished batch", "file", e.Name())
	}
	return nil
}

// rememberVerified notes that the file at path holds digest, as of its
// current stat.
func (x *Exporter) rememberVerified(path string, digest Digest) {
	fi, err := os.Stat(path)
	if err != nil {
		x.digests.forget(path)
		return
	}
	x.digests.put(path, statOf(fi), digest)
}

// fileOK reports whether the file at path holds exactly digest. A file
// already hashed is hashed again only when its stat changed.
func (x *Exporter) fileOK(path string, digest Digest) bool {
	f, err := os.Open(path)
	if err != nil {
		x.digests.forget(path)
		return false
	}
	defer f.Close()
	got, _, _, err := x.digests.of(path, f)
	return err == nil && got == digest
}

type indexResult struct {
	listed, regenerated, unavailable int
}

// refreshIndex rewrites c's index.txt from the recorded batches ending
// after cutoff, listing only files whose bytes match their record; missing
// or damaged files are regenerated first when possible.
func (x *Exporter) refreshIndex(ctx context.Context, c *Config, dir string, cutoff, now time.Time) (indexResult, error) {
	var res indexResult
	batches, err := x.store.Batches(ctx, c.Root)
	if err != nil {
		return res, err
	}
	var errs []error
	var lines []string
	recorded := map[string]Digest{}
	for _, b := range batches {
		if !b.End.After(cutoff) {
			continue
		}
		var broken []FileRecord
		for _, f := range b.Files {
			recorded[c.Root+"/"+f.Name] = f.ZipSHA256
			if x.fileOK(filepath.Join(dir, f.Name), f.ZipSHA256) {
				lines = append(lines, c.Root+"/"+f.Name)
			} else {
				broken = append(broken, f)
			}
		}
		if len(broken) == 0 {
			continue
		}
		fixed, err := x.regenerate(ctx, c, dir, b, broken, now)
		if isCrash(err) {
			return res, err
		}
		for _, f := range fixed {
			lines = append(lines, c.Root+"/"+f.Name)
		}
		res.regenerated += len(fixed)
		res.unavailable += len(broken) - len(fixed)
		x.m.regenerated.WithLabelValues(c.Root).Add(float64(len(fixed)))
		if err != nil {
			x.opts.Log.Error("export: recorded files are missing or damaged and could not be regenerated; they are not listed",
				"root", c.Root, "window", b.Window().String(), "files", len(broken)-len(fixed), "err", err)
			errs = append(errs, fmt.Errorf("regenerate %s: %w", b.Window(), err))
		}
	}
	x.m.unavailable.WithLabelValues(c.Root).Set(float64(res.unavailable))
	slices.Sort(lines)
	res.listed = len(lines)
	x.m.listed.WithLabelValues(c.Root).Set(float64(len(lines)))
	x.recordedMu.Lock()
	x.recorded[c.Root] = recorded
	x.recordedMu.Unlock()
	if err := x.step("before-index"); err != nil {
		return res, err
	}
	if _, err := writeListing(dir, IndexName, export.FormatListing(lines)); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// regenerate rewrites the broken files of batch b byte for byte: the keys
// come from the store, padding and revised keys from the record, and the
// signatures are the recorded ones (ECDSA signatures are randomized, so
// signing again would change the zip). It returns the files it fixed; when
// the store no longer yields the recorded export.bin (keys deleted or
// changed), it fixes none and says why.
func (x *Exporter) regenerate(ctx context.Context, c *Config, dir string, b *Batch, broken []FileRecord, now time.Time) ([]FileRecord, error) {
	w := b.Window()
	lease := leaseName(c.Root, w)
	if err := x.store.AcquireLease(ctx, lease, x.opts.Owner, now, x.opts.LeaseTTL); err != nil {
		return nil, err
	}
	defer x.store.ReleaseLease(context.WithoutCancel(ctx), lease, x.opts.Owner)
	full, err := x.store.Batch(ctx, c.Root, w.Start)
	if err != nil {
		return nil, err
	}
	cont, err := collect(ctx, x.store, c, w)
	if err != nil {
		return nil, err
	}
	if len(cont.keys) != full.Keys {
		return nil, fmt.Errorf("%w: %d keys in the store, %d recorded", errContentChanged, len(cont.keys), full.Keys)
	}
	padding, err := decodeKeyList(full.Padding)
	if err != nil {
		return nil, fmt.Errorf("recorded padding: %w", err)
	}
	revised, err := decodeKeyList(full.Revised)
	if err != nil {
		return nil, fmt.Errorf("recorded revised keys: %w", err)
	}
	l := newLayout(cont.keys, padding, revised)
	n := len(full.Files)
	if got := l.fileCount(c.MaxKeysPerFile); got != n {
		return nil, fmt.Errorf("%w: %d files, %d recorded", errContentChanged, got, n)
	}
	var fixed []FileRecord
	var errs []error
	for _, f := range broken {
		if f.Num < 1 || f.Num > n || len(f.Signatures) != len(full.SignatureInfos) {
			errs = append(errs, fmt.Errorf("%s: inconsistent record", f.Name))
			continue
		}
		signers := make([]export.Signer, len(full.SignatureInfos))
		for i, info := range full.SignatureInfos {
			signers[i] = replaySigner{info: info, bin: f.BinSHA256, sig: f.Signatures[i]}
		}
		if err := rewriteZip(dir, f.Name, exportFile(c, w, l, f.Num-1, n), signers, f.ZipSHA256); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name, err))
			continue
		}
		x.rememberVerified(filepath.Join(dir, f.Name), f.ZipSHA256)
		fixed = append(fixed, f)
		x.opts.Log.Warn("export: regenerated a missing or damaged file", "root", c.Root, "file", f.Name)
	}
	if len(fixed) > 0 {
		if err := syncDir(dir); err != nil {
			return nil, err
		}
	}
	return fixed, errors.Join(errs...)
}

// largeFile is the key count from which the exporter collects garbage
// between the files of a split batch.
const largeFile = 100_000

// eventsLease keeps two exporters from delivering the same events at once.
const eventsLease = "export/events"

// deliver hands the outbox's events to the hooks, oldest first, removing
// each one its hook accepted. It stops at the first failure; the rest waits
// for the next pass. While another exporter delivers, it does nothing.
func (x *Exporter) deliver(ctx context.Context) error {
	switch err := x.store.AcquireLease(ctx, eventsLease, x.opts.Owner, x.opts.Now(), x.opts.LeaseTTL); {
	case errors.Is(err, ErrLeaseHeld):
		return nil
	case err != nil:
		return fmt.Errorf("export events: %w", err)
	}
	defer x.store.ReleaseLease(context.WithoutCancel(ctx), eventsLease, x.opts.Owner)
	for {
		events, err := x.store.PendingEvents(ctx, 256)
		if err != nil {
			return fmt.Errorf("export events: %w", err)
		}
		if len(events) == 0 {
			return nil
		}
		for _, ev := range events {
			var err error
			switch {
			case ev.FilePublished != nil && x.opts.Events.OnFilePublished != nil:
				err = x.opts.Events.OnFilePublished(ctx, *ev.FilePublished)
			case ev.Retention != nil && x.opts.Events.OnRetention != nil:
				err = x.opts.Events.OnRetention(ctx, *ev.Retention)
			case ev.RootAdded != nil && x.opts.Events.OnRootAdded != nil:
				err = x.opts.Events.OnRootAdded(ctx, *ev.RootAdded)
			}
			if err != nil {
				x.m.eventFailures.Inc()
				return fmt.Errorf("export event %d: %w", ev.ID, err)
			}
			if err := x.store.AckEvent(ctx, ev.ID); err != nil {
				return fmt.Errorf("export event %d: %w", ev.ID, err)
			}
		}
	}
}

// PublicKeys returns the public keys of root's configuration that app
// developers register: the active ones and those retired less than the
// retention period ago (files they signed may still be served).
func (x *Exporter) PublicKeys(ctx context.Context, root string) ([]PublishedKey, error) {
	c, err := x.store.ExportConfig(ctx, root)
	if err != nil {
		return nil, err
	}
	return publishedKeys(ctx, x.keys, c, x.opts.Now(), x.opts.Retention)
}

// publishRoots writes roots.txt, the list of configured roots. A root new to
// the list is first queued for the transparency log and delivered, so that
// it is normally logged before anyone can find it; when the log cannot take
// it now, the root is listed all the same (its phones need the files) and
// the event follows with the next delivery. Auditors report a listed root
// that is not logged.
func (x *Exporter) publishRoots(ctx context.Context, configs []*Config) error {
	var roots []string
	var added []Event
	cur, err := os.ReadFile(filepath.Join(x.opts.Dir, RootsName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", RootsName, err)
	}
	listed, _ := export.ParseRoots(cur) // a damaged list is rewritten whole
	for _, c := range configs {
		if !export.ValidRoot(c.Root) {
			continue
		}
		roots = append(roots, c.Root)
		if !slices.Contains(listed, c.Root) {
			added = append(added, Event{RootAdded: &RootAdded{Root: c.Root, Region: c.Region}})
		}
	}
	slices.Sort(roots)
	if len(added) > 0 {
		if err := x.store.AppendEvents(ctx, added); err != nil {
			return fmt.Errorf("export roots: %w", err)
		}
		if err := x.deliver(ctx); err != nil {
			x.opts.Log.Warn("export: a new root is listed before the log took it", "err", err)
		}
	}
	if _, err := writeListing(x.opts.Dir, RootsName, export.FormatListing(roots)); err != nil {
		return fmt.Errorf("export roots: %w", err)
	}
	return nil
}

// recordedDigest returns the recorded SHA-256 of root's file name, from
// the last index refresh or, for a file it did not see (another exporter
// wrote it, or no pass ran yet), from the store.
func (x *Exporter) recordedDigest(ctx context.Context, root, name string) (Digest, bool, error) {
	line := root + "/" + name
	x.recordedMu.RLock()
	d, ok := x.recorded[root][line]
	x.recordedMu.RUnlock()
	if ok {
		return d, true, nil
	}
	w, _, ok := parseFileName(name)
	if !ok {
		return Digest{}, false, nil
	}
	batches, err := x.store.Batches(ctx, root)
	if err != nil {
		return Digest{}, false, err
	}
	for _, b := range batches {
		if !b.Start.Equal(w.Start) {
			continue
		}
		for _, f := range b.Files {
			if f.Name == name {
				return f.ZipSHA256, true, nil
			}
		}
	}
	return Digest{}, false, nil
}

// requestRepair asks RunRepairs for a pass, without waiting.
func (x *Exporter) requestRepair() {
	select {
	case x.repair <- struct{}{}:
	default: // one is pending already
	}
}

// RunRepairs runs a pass whenever the Handler finds a listed file whose
// bytes differ from its record (the pass regenerates it), until ctx ends.
// Without it, such a file waits for the next scheduled pass; it is not
// served meanwhile.
func (x *Exporter) RunRepairs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-x.repair:
		}
		if _, err := x.Pass(ctx); err != nil && ctx.Err() == nil {
			x.opts.Log.Warn("export: repair pass failed", "err", err)
		}
	}
}
