package exporter

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
)

// rec is one key of a batch in compact form: 32 bytes, where an export.Key
// takes 56 plus 16 for its bytes. A batch of a million keys lives as recs
// and becomes export.Keys one file at a time.
type rec struct {
	hi, lo     uint64 // the key bytes, big endian
	start      int32  // rolling start interval number
	days       int32  // days since onset of symptoms, when hasDays
	risk       int8   // transmission risk level
	period     uint8  // rolling period
	reportType uint8
	hasDays    bool
}

// recOf converts e, with its revised values when revised is set.
// keyserver.ReportType uses the export numbering, so a negative revision
// becomes REVOKED. It reports false for values the export format or the
// publish rules do not allow, which only a damaged record can hold.
func recOf(e *keyserver.Exposure, revised bool) (rec, bool) {
	r := rec{
		hi:      binary.BigEndian.Uint64(e.Key[:8]),
		lo:      binary.BigEndian.Uint64(e.Key[8:]),
		start:   e.IntervalNumber,
		days:    e.DaysSinceOnset,
		hasDays: e.HasDaysSinceOnset,
	}
	risk, rt := e.TransmissionRisk, e.ReportType
	if revised {
		risk, rt, r.days = e.RevisedTransmissionRisk, e.RevisedReportType, e.RevisedDaysSinceOnset
	}
	if risk < 0 || risk > math.MaxInt8 || e.IntervalCount < 0 || e.IntervalCount > export.DefaultRollingPeriod || rt > keyserver.ReportType(export.Revoked) {
		return rec{}, false
	}
	r.risk, r.period, r.reportType = int8(risk), uint8(e.IntervalCount), uint8(rt)
	return r, true
}

// recFromKey converts an export key (of a batch record) back.
func recFromKey(k *export.Key) (rec, error) {
	if len(k.Data) != export.KeyLength || k.TransmissionRisk < 0 || k.TransmissionRisk > math.MaxInt8 ||
		k.RollingPeriod < 0 || k.RollingPeriod > export.DefaultRollingPeriod || k.ReportType < 0 || k.ReportType > export.Revoked {
		return rec{}, fmt.Errorf("recorded key out of range: %+v", k)
	}
	return rec{
		hi: binary.BigEndian.Uint64(k.Data[:8]), lo: binary.BigEndian.Uint64(k.Data[8:]),
		start: k.RollingStartInterval, days: k.DaysSinceOnset, hasDays: k.HasDaysSinceOnset,
		risk: int8(k.TransmissionRisk), period: uint8(k.RollingPeriod), reportType: uint8(k.ReportType),
	}, nil
}

// key returns r as an export key whose bytes are written to data (16 bytes).
func (r *rec) key(data []byte) export.Key {
	binary.BigEndian.PutUint64(data[:8], r.hi)
	binary.BigEndian.PutUint64(data[8:16], r.lo)
	return export.Key{
		Data:                 data[:16:16],
		TransmissionRisk:     int32(r.risk),
		RollingStartInterval: r.start,
		RollingPeriod:        int32(r.period),
		ReportType:           export.ReportType(r.reportType),
		DaysSinceOnset:       r.days,
		HasDaysSinceOnset:    r.hasDays,
	}
}

// exportKeys converts recs to export keys, with their bytes in one block.
func exportKeys(recs []rec) []export.Key {
	if len(recs) == 0 {
		return nil
	}
	data := make([]byte, len(recs)*export.KeyLength)
	keys := make([]export.Key, len(recs))
	for i := range recs {
		keys[i] = recs[i].key(data[i*export.KeyLength:])
	}
	return keys
}

// content is what one window exports before padding: its real new keys and
// its revised keys, in scan order.
type content struct {
	keys    []rec
	revised []rec
	skipped int
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
// exportable, so a re-export reproduces the same bytes. Records holding
// values no key may have are skipped and counted with the undecodable ones.
func collect(ctx context.Context, src ExposureSource, cfg *Config, w Window) (*content, error) {
	c := &content{}
	// Sizing the buffer up front spares a million-key batch the copies and
	// garbage of growing it.
	n, err := src.CountExportExposures(ctx, false, w.Start, w.End)
	if err != nil {
		return nil, fmt.Errorf("count keys of %s: %w", w, err)
	}
	c.keys = make([]rec, 0, n)
	skipped, err := src.ScanExportExposures(ctx, false, w.Start, w.End, func(e *keyserver.Exposure) error {
		if !cfg.Includes(e) {
			return nil
		}
		r, ok := recOf(e, e.Revised && e.RevisedAt.Before(w.End))
		if !ok {
			c.skipped++
			return nil
		}
		c.keys = append(c.keys, r)
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
		r, ok := recOf(e, true)
		if !ok {
			c.skipped++
			return nil
		}
		c.revised = append(c.revised, r)
		return nil
	})
	c.skipped += skipped
	if err != nil {
		return nil, fmt.Errorf("read revised keys of %s: %w", w, err)
	}
	return c, nil
}

// probe reports whether window w has any key cfg exports, stopping at the
// first one, and how many records it read (keys of other regions, bad
// records) without finding one.
func probe(ctx context.Context, src ExposureSource, cfg *Config, w Window) (found bool, read int, err error) {
	stop := func(e *keyserver.Exposure) error {
		read++
		if cfg.Includes(e) {
			found = true
			return errStopScan
		}
		return nil
	}
	skipped, err := src.ScanExportExposures(ctx, false, w.Start, w.End, stop)
	read += skipped
	if err != nil && !errors.Is(err, errStopScan) {
		return false, read, fmt.Errorf("read keys of %s: %w", w, err)
	}
	if found {
		return true, read, nil
	}
	skipped, err = src.ScanExportExposures(ctx, true, w.Start, w.End, func(e *keyserver.Exposure) error {
		if !e.Revised || !e.CreatedAt.Before(w.Start) {
			read++
			return nil
		}
		return stop(e)
	})
	read += skipped
	if err != nil && !errors.Is(err, errStopScan) {
		return false, read, fmt.Errorf("read revised keys of %s: %w", w, err)
	}
	return found, read, nil
}

// errStopScan ends a scan early; it never leaves this package.
var errStopScan = errors.New("stop scan")

// makePadding returns the random keys that bring keys up to minKeys. Each
// copies the metadata (report type, risk, rolling start and period, days
// since onset) of a random real key, from keys or else from revised, so
// padding cannot be told apart from real keys. It returns nil when there is
// no real key or enough of them. rnd must be cryptographically random.
func makePadding(keys, revised []rec, minKeys int, rnd io.Reader) ([]rec, error) {
	n := minKeys - len(keys)
	models := keys
	if len(models) == 0 {
		models = revised
	}
	if n <= 0 || len(models) == 0 {
		return nil, nil
	}
	const draw = 16 + 8
	buf := make([]byte, n*draw)
	if _, err := io.ReadFull(rnd, buf); err != nil {
		return nil, fmt.Errorf("padding: random: %w", err)
	}
	out := make([]rec, n)
	for i := range out {
		b := buf[i*draw:]
		// The 64-bit draw's modulo bias is below 2^-40 for any key count.
		model := models[binary.BigEndian.Uint64(b[16:])%uint64(len(models))]
		model.hi, model.lo = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16])
		out[i] = model
	}
	return out, nil
}

// newPadding draws padding from crypto/rand.
func newPadding(keys, revised []rec, minKeys int) ([]rec, error) {
	return makePadding(keys, revised, minKeys, bufio.NewReaderSize(rand.Reader, 1<<16))
}

// compareRecs orders keys by their bytes, then (for equal bytes, which only
// a random padding key hitting a real one could give) by their metadata, so
// that the order is total and the result deterministic.
func compareRecs(a, b rec) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	if c := cmp.Compare(a.lo, b.lo); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.days, b.days), cmp.Compare(a.risk, b.risk),
		cmp.Compare(a.period, b.period), cmp.Compare(a.reportType, b.reportType), boolCompare(a.hasDays, b.hasDays))
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// radixMin is the batch size from which sortRecs distributes keys into
// buckets by their first two bytes before sorting each bucket.
const radixMin = 1 << 14

// sortRecs sorts keys by their bytes and drops repeated key bytes (p ≈
// 2^-128, see compareRecs). It may return a different slice than keys.
//
// Large batches are sorted with one counting-sort pass on the first 16 bits
// (keys are random, so each of the 65,536 buckets holds a few keys) and a
// comparison sort per bucket: about four times faster than sorting a
// million keys by comparison alone. Keys an uploader chose to share a prefix
// only make their bucket's sort a normal comparison sort.
func sortRecs(keys []rec) []rec {
	if len(keys) >= radixMin {
		counts := make([]int, 1<<16)
		for i := range keys {
			counts[keys[i].hi>>48]++
		}
		sum := 0
		for i, c := range counts {
			counts[i] = sum
			sum += c
		}
		// counts[b] is now where bucket b starts.
		out := make([]rec, len(keys))
		for i := range keys {
			b := keys[i].hi >> 48
			out[counts[b]] = keys[i]
			counts[b]++
		}
		// counts[b] is now where bucket b ends.
		lo := 0
		for _, hi := range counts {
			if hi-lo > 1 {
				slices.SortFunc(out[lo:hi], compareRecs)
			}
			lo = hi
		}
		keys = out
	} else {
		slices.SortFunc(keys, compareRecs)
	}
	return slices.CompactFunc(keys, func(a, b rec) bool { return a.hi == b.hi && a.lo == b.lo })
}

// layout holds a batch's keys in file order: keys (real and padding) then
// revised keys, each sorted by key bytes.
type layout struct {
	keys, revised []rec
}

// newLayout sorts the keys of a batch. It takes ownership of the slices.
func newLayout(keys, padding, revised []rec) layout {
	all := keys
	if len(padding) > 0 {
		all = append(keys, padding...)
	}
	return layout{keys: sortRecs(all), revised: sortRecs(revised)}
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
func (l layout) file(i, n int) (keys, revised []rec) {
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
		Keys:         exportKeys(keys),
		RevisedKeys:  exportKeys(revised),
	}
}

// FileName returns the name of file num (from 1) of window w in its root
// directory: <start>-<end>-<NNNNN>.zip.
func FileName(w Window, num int) string {
	return fmt.Sprintf("%d-%d-%05d.zip", w.Start.Unix(), w.End.Unix(), num)
}

// encodeKeyList encodes keys for a batch record: the protobuf of a
// TemporaryExposureKeyExport holding only them.
func encodeKeyList(keys []rec) ([]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	b, err := export.MarshalBin(&export.File{Keys: exportKeys(keys)})
	if err != nil {
		return nil, err
	}
	return b[len(export.Header):], nil
}

// decodeKeyList decodes what encodeKeyList wrote.
func decodeKeyList(b []byte) ([]rec, error) {
	if len(b) == 0 {
		return nil, nil
	}
	f, err := export.UnmarshalBin(append([]byte(export.Header), b...))
	if err != nil {
		return nil, err
	}
	out := make([]rec, len(f.Keys))
	for i := range f.Keys {
		if out[i], err = recFromKey(&f.Keys[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
