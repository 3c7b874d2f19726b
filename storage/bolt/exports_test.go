package bolt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/storage/storetest"
)

func openExportDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var exportT0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// The export store's contract is the conformance suite in storage/storetest.
func TestExportConformance(t *testing.T) {
	storetest.TestExportStore(t, func(t *testing.T) storetest.ExportStore { return openExportDB(t) })
}

// DeleteBatches also removes the batches' padding records.
func TestDeleteBatchesRemovesKeys(t *testing.T) {
	db := openExportDB(t)
	ctx := context.Background()
	for h := range 3 {
		b := &exporter.Batch{Root: "r", Start: exportT0.Add(time.Duration(h) * time.Hour), End: exportT0.Add(time.Duration(h+1) * time.Hour), Padding: []byte("p")}
		if err := db.CompleteBatch(ctx, b, "l", "A", nil); err != nil {
			t.Fatal(err)
		}
	}
	if gone, err := db.DeleteBatches(ctx, "r", exportT0.Add(2*time.Hour)); err != nil || len(gone) != 2 {
		t.Fatalf("DeleteBatches: %d, %v", len(gone), err)
	}
	err := db.db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bucketExportBatchKeys).Stats().KeyN; n != 1 {
			t.Errorf("%d padding records left, want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func storeExposures(t *testing.T, db *DB, es ...*keyserver.Exposure) {
	t.Helper()
	keys := make([][keyserver.KeyLength]byte, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	err := db.Publish(context.Background(), keys, func(existing map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error) {
		ch := &keyserver.Change{}
		for _, e := range es {
			if _, ok := existing[e.Key]; ok {
				ch.Revise = append(ch.Revise, e)
			} else {
				ch.Insert = append(ch.Insert, e)
			}
		}
		return ch, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func randomExposure(created time.Time, region string) *keyserver.Exposure {
	e := &keyserver.Exposure{IntervalNumber: 2_900_000, IntervalCount: 144, TransmissionRisk: 3, ReportType: keyserver.ReportLikely,
		DaysSinceOnset: -2, HasDaysSinceOnset: true, Region: region, HealthAuthorityID: "app." + region, CreatedAt: created}
	rand.Read(e.Key[:])
	return e
}

func TestScanExportExposures(t *testing.T) {
	db := openExportDB(t)
	ctx := context.Background()
	w0, w1 := exportT0, exportT0.Add(time.Hour)
	var in0 []*keyserver.Exposure
	for i := range 5 {
		region := "A"
		if i%2 == 1 {
			region = "B"
		}
		in0 = append(in0, randomExposure(w0, region))
	}
	storeExposures(t, db, in0...)
	storeExposures(t, db, randomExposure(w1, "A"), randomExposure(w0.Add(-time.Hour), "A"))
	// A revision in w1 of a key created in w0.
	rev := *in0[0]
	rev.Revised, rev.RevisedReportType, rev.RevisedAt = true, keyserver.ReportConfirmed, w1
	storeExposures(t, db, &rev)
	// Bad records: a truncated exposure in w0, and a revision index entry
	// of the wrong length in w1.
	err := db.db.Update(func(tx *bbolt.Tx) error {
		k := binary.BigEndian.AppendUint64(nil, uint64(w0.Unix()))
		k = binary.BigEndian.AppendUint64(k, 1<<62)
		if err := tx.Bucket(bucketExposures).Put(k, []byte{2, 1, 2, 3}); err != nil {
			return err
		}
		return tx.Bucket(bucketExposuresRevised).Put(append(binary.BigEndian.AppendUint64(nil, uint64(w1.Unix())), 1, 2, 3), nil)
	})
	if err != nil {
		t.Fatal(err)
	}

	var got []string
	var regions []string
	skipped, err := db.ScanExportExposures(ctx, false, w0, w1, func(e *keyserver.Exposure) error {
		got = append(got, string(e.Key[:]))
		regions = append(regions, e.Region)
		if !e.CreatedAt.Equal(w0) || e.HealthAuthorityID != "app."+e.Region {
			t.Errorf("decoded %+v", e)
		}
		return nil
	})
	if err != nil || skipped != 1 {
		t.Fatalf("scan: skipped %d, %v", skipped, err)
	}
	want := make([]string, len(in0))
	for i, e := range in0 {
		want[i] = string(e.Key[:])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("scan of w0 returned %d keys, want %d", len(got), len(want))
	}
	if slices.Index(regions, "B") < 0 || slices.Index(regions, "A") < 0 {
		t.Errorf("regions %q: interning must not mix up strings", regions)
	}
	if n, err := db.CountExportExposures(ctx, false, w0, w1); err != nil || n != 6 {
		t.Errorf("count of w0: %d (%v), want 6 (5 and the bad one)", n, err)
	}

	var revised []*keyserver.Exposure
	skipped, err = db.ScanExportExposures(ctx, true, w1, w1.Add(time.Hour), func(e *keyserver.Exposure) error {
		c := *e
		revised = append(revised, &c)
		return nil
	})
	if err != nil || skipped != 1 || len(revised) != 1 || revised[0].Key != in0[0].Key || !revised[0].Revised || revised[0].RevisedReportType != keyserver.ReportConfirmed {
		t.Fatalf("revised scan: %d skipped, %+v, %v", skipped, revised, err)
	}
	// fn's error stops the scan and comes back.
	stop := errors.New("stop")
	if _, err := db.ScanExportExposures(ctx, false, w0, w1, func(*keyserver.Exposure) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("scan error: %v", err)
	}
}

// The exporter's allocation-free decoder reads exactly what the reference
// decoder reads.
func TestExposureDecoderMatchesRecord(t *testing.T) {
	var dec exposureDecoder
	cases := []*keyserver.Exposure{
		randomExposure(exportT0, "US-WA"),
		{IntervalNumber: -5, IntervalCount: 1, TransmissionRisk: 8, ReportType: keyserver.ReportUserReport, Traveler: true, CreatedAt: exportT0},
		{IntervalNumber: 7, IntervalCount: 144, DaysSinceOnset: 14, HasDaysSinceOnset: true, Region: string(make([]byte, 255)), HealthAuthorityID: "", CreatedAt: exportT0,
			Revised: true, RevisedReportType: keyserver.ReportNegative, RevisedTransmissionRisk: 6, RevisedDaysSinceOnset: -14, RevisedAt: exportT0.Add(time.Hour)},
		randomExposure(exportT0, "US-OR"),
	}
	for i, e := range cases {
		rand.Read(e.Key[:])
		if i%2 == 0 {
			rand.Read(e.UploadTag[:])
		}
		b := encodeExposure(e)
		want, err := decodeExposure(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.decode(b)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("case %d:\n got %+v\nwant %+v", i, got, want)
		}
		for n := range len(b) {
			if _, err := dec.decode(b[:n]); err == nil {
				t.Fatalf("case %d: a record cut to %d bytes decoded", i, n)
			}
		}
	}
	if _, err := dec.decode([]byte{9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62}); err == nil {
		t.Error("a record of an unknown version decoded")
	}
	once := encodeExposure(cases[0])
	if allocs := testing.AllocsPerRun(100, func() { dec.decode(once) }); allocs != 0 {
		t.Errorf("decode allocates %v times per record", allocs)
	}
}
