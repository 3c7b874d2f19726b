package exporter

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/candor-en/candor/api/export"
)

// exportWindow produces the batch of window w under its lease. It returns
// nil, nil when the window has no keys or another exporter recorded it.
// Its steps keep the order of docs/EXPORTS.md ("Crash safety and leases"):
// lease, keys, files written and synced, then one record of the batch and
// its events.
func (x *Exporter) exportWindow(ctx context.Context, c *Config, dir string, w Window, now time.Time) (b *Batch, err error) {
	found, read, err := probe(ctx, x.store, c, w)
	if err != nil {
		return nil, err
	}
	if !found {
		if read > 0 {
			if err := x.recordEmptyWindow(ctx, c, w, now); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	lease := leaseName(c.Root, w)
	if err := x.store.AcquireLease(ctx, lease, x.opts.Owner, now, x.opts.LeaseTTL); err != nil {
		return nil, err
	}
	completed := false
	defer func() {
		if !completed && !isCrash(err) {
			if rerr := x.store.ReleaseLease(context.WithoutCancel(ctx), lease, x.opts.Owner); rerr != nil {
				x.opts.Log.Warn("export: releasing lease failed", "lease", lease, "err", rerr)
			}
		}
	}()
	// Another exporter may have recorded the window since Batches was read.
	switch _, err := x.store.Batch(ctx, c.Root, w.Start); {
	case err == nil:
		return nil, nil
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}

	b = &Batch{Root: c.Root, Start: w.Start, End: w.End, Created: now}
	signers, err := x.batchSigners(ctx, c, b, now)
	if err != nil {
		return nil, err
	}
	l, ok, err := x.collectBatch(ctx, c, dir, w, b)
	if err != nil || !ok {
		return nil, err
	}
	if err := x.writeFiles(ctx, c, dir, w, l, signers, b, lease, now); err != nil {
		return nil, err
	}
	if err := x.recordBatch(ctx, c, w, b, lease); err != nil {
		return nil, err
	}
	completed = true
	x.noteRecorded(c, dir, b)
	if err := x.step("recorded"); err != nil {
		return b, err
	}
	return b, nil
}

// recordEmptyWindow records window w as exported without files. The window
// holds only keys this configuration does not export (or bad records);
// recording it keeps later passes from reading them again, as a closed
// window never gains keys.
func (x *Exporter) recordEmptyWindow(ctx context.Context, c *Config, w Window, now time.Time) error {
	empty := &Batch{Root: c.Root, Start: w.Start, End: w.End, Created: now, Files: []FileRecord{}}
	if err := x.store.CompleteBatch(ctx, empty, leaseName(c.Root, w), x.opts.Owner, nil); err != nil && !errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("record empty window: %w", err)
	}
	return nil
}

// batchSigners returns a signer for each signature info of c active at now,
// and lists their infos in b.
func (x *Exporter) batchSigners(ctx context.Context, c *Config, b *Batch, now time.Time) ([]export.Signer, error) {
	infos := c.ActiveSignatureInfos(now)
	if len(infos) == 0 {
		return nil, errNoActiveKey
	}
	signers := make([]export.Signer, len(infos))
	for i, s := range infos {
		ds, _, err := x.keys.Signer(ctx, s.Keyset)
		if err != nil {
			return nil, err
		}
		signers[i] = export.NewSigner(s.Export(), ds)
		b.SignatureInfos = append(b.SignatureInfos, s.Export())
	}
	return signers, nil
}

// collectBatch reads the keys of window w, draws the padding, keeps the
// counts, padding and revised keys in b, removes the files of an earlier
// attempt and sorts the keys into files. ok is false when the window has
// no keys.
func (x *Exporter) collectBatch(ctx context.Context, c *Config, dir string, w Window, b *Batch) (l layout, ok bool, err error) {
	cont, err := collect(ctx, x.store, c, w)
	if err != nil {
		return layout{}, false, err
	}
	if len(cont.keys)+len(cont.revised) == 0 {
		return layout{}, false, nil
	}
	padding, err := newPadding(cont.keys, cont.revised, c.MinKeys)
	if err != nil {
		return layout{}, false, err
	}
	b.Keys, b.RevisedKeys, b.PaddingKeys, b.Skipped = len(cont.keys), len(cont.revised), len(padding), cont.skipped
	if b.Padding, err = encodeKeyList(padding); err != nil {
		return layout{}, false, fmt.Errorf("encode padding: %w", err)
	}
	if b.Revised, err = encodeKeyList(cont.revised); err != nil {
		return layout{}, false, fmt.Errorf("encode revised keys: %w", err)
	}
	if err := x.step("collected"); err != nil {
		return layout{}, false, err
	}
	// Files of an attempt that died before recording are not listed
	// anywhere; remove them so a smaller redo leaves no stray file.
	if err := x.removeWindowFiles(dir, w); err != nil {
		return layout{}, false, err
	}
	return newLayout(cont.keys, padding, cont.revised), true, nil
}

// collectLarge collects garbage after a large batch is sorted or one of its
// files is written. Sorting left the unsorted keys behind as garbage, and
// each file's buffers become garbage once it is written. A large batch
// collects them at once: otherwise the heap goal, set while they were live,
// lets the next buffers pile on top of them. It is cheap, as the big
// buffers hold no pointers, and keeps the peak at the sorted keys plus one
// file.
func collectLarge(keys int) {
	if keys >= largeFile {
		runtime.GC()
	}
}

// writeFiles writes the files of layout l for window w into dir, signed by
// signers, checking before each rename that the lease is still ours, and
// syncs dir. It lists the files in b.
func (x *Exporter) writeFiles(ctx context.Context, c *Config, dir string, w Window, l layout, signers []export.Signer, b *Batch, lease string, now time.Time) error {
	n := l.fileCount(c.MaxKeysPerFile)
	b.Files = make([]FileRecord, n)
	collectLarge(b.Keys + b.RevisedKeys)
	// Files are written one after the other: a file of 500,000 keys needs
	// about 64 MB while it is encoded, and a million-key batch must fit in a
	// small machine's memory.
	for i := range n {
		f := exportFile(c, w, l, i, n)
		rec := make([]*recordingSigner, len(signers))
		use := make([]export.Signer, len(signers))
		for j, s := range signers {
			rec[j] = &recordingSigner{Signer: s}
			use[j] = rec[j]
		}
		name := FileName(w, i+1)
		// Right before each rename, check that the lease is still ours
		// (an exporter that stalled past its TTL must not overwrite the
		// files of the one that took over).
		written, err := writeZip(dir, name, f, use, func(export.Written) error {
			return x.store.AcquireLease(ctx, lease, x.opts.Owner, now, x.opts.LeaseTTL)
		})
		if err != nil {
			return err
		}
		fr := FileRecord{
			Name: name, Num: i + 1, ZipSHA256: written.ZipSHA256, BinSHA256: written.BinSHA256,
			Size: written.Size, Keys: written.KeyCount, RevisedKeys: written.RevisedCount,
		}
		for _, r := range rec {
			fr.Signatures = append(fr.Signatures, r.sig)
		}
		b.Files[i] = fr
		if err := x.step("file-written"); err != nil {
			return err
		}
		if i+1 < n {
			keys := len(f.Keys) + len(f.RevisedKeys)
			f = nil
			collectLarge(keys)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return x.step("files-synced")
}

// recordBatch stores b with the events of its files and releases the
// lease, in one transaction of the store.
func (x *Exporter) recordBatch(ctx context.Context, c *Config, w Window, b *Batch, lease string) error {
	n := len(b.Files)
	events := make([]Event, n)
	for i, f := range b.Files {
		events[i] = Event{FilePublished: &FilePublished{
			Root: c.Root, Name: c.Root + "/" + f.Name, Region: c.Region, Start: w.Start, End: w.End,
			FileNum: f.Num, FileCount: n, ZipSHA256: f.ZipSHA256, BinSHA256: f.BinSHA256, Size: f.Size,
			Keys: f.Keys, RevisedKeys: f.RevisedKeys, SigningKeys: b.SignatureInfos,
		}}
	}
	if err := x.store.CompleteBatch(ctx, b, lease, x.opts.Owner, events); err != nil {
		return fmt.Errorf("record batch: %w", err)
	}
	return nil
}

// noteRecorded remembers the digests of the recorded batch b's files, so
// the index need not hash them again, and logs and counts them.
func (x *Exporter) noteRecorded(c *Config, dir string, b *Batch) {
	for _, f := range b.Files {
		x.rememberVerified(filepath.Join(dir, f.Name), f.ZipSHA256)
		x.opts.Log.Info("export file written", "root", c.Root, "file", f.Name, "keys", f.Keys, "revised", f.RevisedKeys, "bytes", f.Size)
	}
	x.m.files.WithLabelValues(c.Root).Add(float64(len(b.Files)))
	x.m.keys.WithLabelValues(c.Root, "new").Add(float64(b.Keys))
	x.m.keys.WithLabelValues(c.Root, "revised").Add(float64(b.RevisedKeys))
	x.m.keys.WithLabelValues(c.Root, "padding").Add(float64(b.PaddingKeys))
	x.m.skipped.WithLabelValues(c.Root).Add(float64(b.Skipped))
}
