package exporter

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
)

// content is what one window exports before padding: its real new keys and
// its revised keys, in scan order.
type content struct {
	keys    []export.Key
	revised []export.Key
	skipped int
	// arena holds the key bytes in blocks, so that a million keys are a few
	// allocations rather than a million.
	arena []byte
}

const arenaBlock = 4096 * export.KeyLength

// keyData copies k into the arena and returns the copy.
func (c *content) keyData(k *[keyserver.KeyLength]byte) []byte {
	if len(c.arena)+export.KeyLength > cap(c.arena) {
		c.arena = make([]byte, 0, arenaBlock)
	}
	n := len(c.arena)
	c.arena = append(c.arena, k[:]...)
	return c.arena[n : n+export.KeyLength : n+export.KeyLength]
}

// exportKey converts e to an export key, with its revised values when
// revised is set. keyserver.ReportType uses the export numbering, so a
// negative revision becomes REVOKED.
func exportKey(e *keyserver.Exposure, data []byte, revised bool) export.Key {
	k := export.Key{
		Data:                 data,
		TransmissionRisk:     e.TransmissionRisk,
		RollingStartInterval: e.IntervalNumber,
		RollingPeriod:        e.IntervalCount,
		ReportType:           export.ReportType(e.ReportType),
		DaysSinceOnset:       e.DaysSinceOnset,
		HasDaysSinceOnset:    e.HasDaysSinceOnset,
	}
	if revised {
		k.TransmissionRisk = e.RevisedTransmissionRisk
		k.ReportType = export.ReportType(e.RevisedReportType)
		k.DaysSinceOnset = e.RevisedDaysSinceOnset
	}
	return k
}

// collect reads the keys of window w that cfg exports:
//
//   - keys: exposures created in w, with their revised values when the
//     revision happened before w ended (it never went out unrevised);
//   - revised: exposures revised in w that were created in an earlier
//     window (their original went out in that window's file).
//
// Every revised key thus appears exactly once with its revised values, and
// what collect returns for a window cannot change once the window is
// exportable, so a re-export reproduces the same bytes.
func collect(ctx context.Context, src ExposureSource, cfg *Config, w Window) (*content, error) {
	c := &content{}
	skipped, err := src.ScanExportExposures(ctx, false, w.Start, w.End, func(e *keyserver.Exposure) error {
		if !cfg.Includes(e) {
			return nil
		}
		rev := e.Revised && e.RevisedAt.Before(w.End)
		c.keys = append(c.keys, exportKey(e, c.keyData(&e.Key), rev))
		return nil
	})
	c.skipped += skipped
	if err != nil {
		return nil, fmt.Errorf("read keys of %s: %w", w, err)
	}
	skipped, err = src.ScanExportExposures(ctx, true, w.Start, w.End, func(e *keyserver.Exposure) error {
		if !e.Revised || !e.CreatedAt.Before(w.Start) || !cfg.Includes(e) {
			return nil
		}
		c.revised = append(c.revised, exportKey(e, c.keyData(&e.Key), true))
		return nil
	})
	c.skipped += skipped
	if err != nil {
		return nil, fmt.Errorf("read revised keys of %s: %w", w, err)
	}
	return c, nil
}

// hasKeys reports whether window w has any key cfg exports, stopping at the
// first one.
func hasKeys(ctx context.Context, src ExposureSource, cfg *Config, w Window) (bool, error) {
	found := false
	stop := func(e *keyserver.Exposure) error {
		if cfg.Includes(e) {
			found = true
			return errStopScan
		}
		return nil
	}
	if _, err := src.ScanExportExposures(ctx, false, w.Start, w.End, stop); err != nil && !errors.Is(err, errStopScan) {
		return false, fmt.Errorf("read keys of %s: %w", w, err)
	}
	if found {
		return true, nil
	}
	_, err := src.ScanExportExposures(ctx, true, w.Start, w.End, func(e *keyserver.Exposure) error {
		if !e.Revised || !e.CreatedAt.Before(w.Start) {
			return nil
		}
		return stop(e)
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return false, fmt.Errorf("read revised keys of %s: %w", w, err)
	}
	return found, nil
}

// errStopScan ends a scan early; it never leaves this package.
var errStopScan = errors.New("stop scan")

// makePadding returns the random keys that bring keys up to minKeys. Each
// copies the metadata (report type, risk, rolling start and period, days
// since onset) of a random real key, from keys or else from revised, so
// padding cannot be told apart from real keys. It returns nil when there is
// no real key or enough of them. rnd must be cryptographically random.
func makePadding(keys, revised []export.Key, minKeys int, rnd io.Reader) ([]export.Key, error) {
	n := minKeys - len(keys)
	models := keys
	if len(models) == 0 {
		models = revised
	}
	if n <= 0 || len(models) == 0 {
		return nil, nil
	}
	buf := make([]byte, n*(export.KeyLength+8))
	if _, err := io.ReadFull(rnd, buf); err != nil {
		return nil, fmt.Errorf("padding: random: %w", err)
	}
	out := make([]export.Key, n)
	for i := range out {
		b := buf[i*(export.KeyLength+8):]
		// The 64-bit draw's modulo bias is below 2^-50 for any key count.
		model := models[binary.BigEndian.Uint64(b[export.KeyLength:])%uint64(len(models))]
		model.Data = b[:export.KeyLength:export.KeyLength]
		model.Variant = export.VariantUnknown
		out[i] = model
	}
	return out, nil
}

// newPadding draws padding from crypto/rand.
func newPadding(keys, revised []export.Key, minKeys int) ([]export.Key, error) {
	return makePadding(keys, revised, minKeys, bufio.NewReaderSize(rand.Reader, 1<<16))
}

// sortByData sorts keys by their bytes in place. It sorts a compact array of
// the keys' bytes as integers and then moves the keys once, which is several
// times faster than sorting the 56-byte keys themselves.
func sortByData(keys []export.Key) {
	type entry struct {
		hi, lo uint64
		idx    int32
	}
	entries := make([]entry, len(keys))
	for i := range keys {
		d := keys[i].Data
		entries[i] = entry{binary.BigEndian.Uint64(d[:8]), binary.BigEndian.Uint64(d[8:16]), int32(i)}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
	// Apply the permutation in place: position i receives keys[entries[i].idx].
	// A visited position is marked with idx -1.
	for i := range entries {
		if entries[i].idx < 0 || int(entries[i].idx) == i {
			continue
		}
		tmp := keys[i]
		j := i
		for {
			k := int(entries[j].idx)
			entries[j].idx = -1
			if k == i {
				keys[j] = tmp
				break
			}
			keys[j] = keys[k]
			j = k
		}
	}
}

// dropDuplicates removes keys equal to their predecessor from sorted keys;
// it only matters if a random padding key hit a real one (p ≈ 2^-128).
func dropDuplicates(keys []export.Key) []export.Key {
	return slices.CompactFunc(keys, func(a, b export.Key) bool { return bytes.Equal(a.Data, b.Data) })
}

// layout holds a batch's keys in file order: keys (real and padding) then
// revised keys, each sorted by key bytes.
type layout struct {
	keys, revised []export.Key
}

// newLayout sorts the keys of a batch. It takes ownership of the slices.
func newLayout(keys, padding, revised []export.Key) layout {
	all := keys
	if len(padding) > 0 {
		all = append(keys, padding...)
	}
	sortByData(all)
	sortByData(revised)
	return layout{keys: dropDuplicates(all), revised: dropDuplicates(revised)}
}

// fileCount returns how many files the layout needs with at most max keys
// per file.
func (l layout) fileCount(max int) int {
	total := len(l.keys) + len(l.revised)
	return (total + max - 1) / max
}

// file returns the keys of file i (from 0) of n: the concatenation of keys
// and revised keys cut into n consecutive parts of equal size (±1), so a
// split batch has files of similar size.
func (l layout) file(i, n int) (keys, revised []export.Key) {
	total := len(l.keys) + len(l.revised)
	lo, hi := i*total/n, (i+1)*total/n
	nk := len(l.keys)
	if lo < nk {
		keys = l.keys[lo:min(hi, nk)]
	}
	if hi > nk {
		revised = l.revised[max(lo, nk)-nk : hi-nk]
	}
	return keys, revised
}

// exportFile returns the export.File of file i of n of window w.
func exportFile(cfg *Config, w Window, l layout, i, n int) *export.File {
	keys, revised := l.file(i, n)
	return &export.File{
		StartTimestamp: uint64(w.Start.Unix()),
		// Phones de-duplicate files on (start, end, batch number): every file
		// is batch 1 of 1, so the files of a split batch differ in their end.
		EndTimestamp: uint64(w.End.Unix()) + uint64(i),
		Region:       cfg.Region,
		BatchNum:     1,
		BatchSize:    1,
		Keys:         keys,
		RevisedKeys:  revised,
	}
}

// FileName returns the name of file num (from 1) of window w in its root
// directory: <start>-<end>-<NNNNN>.zip.
func FileName(w Window, num int) string {
	return fmt.Sprintf("%d-%d-%05d.zip", w.Start.Unix(), w.End.Unix(), num)
}

// encodeKeyList encodes keys for a batch record: the protobuf of a
// TemporaryExposureKeyExport holding only them.
func encodeKeyList(keys []export.Key) ([]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	b, err := export.MarshalBin(&export.File{Keys: keys})
	if err != nil {
		return nil, err
	}
	return b[len(export.Header):], nil
}

// decodeKeyList decodes what encodeKeyList wrote.
func decodeKeyList(b []byte) ([]export.Key, error) {
	if len(b) == 0 {
		return nil, nil
	}
	f, err := export.UnmarshalBin(append([]byte(export.Header), b...))
	if err != nil {
		return nil, err
	}
	return f.Keys, nil
}
