package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
)

// ExportStore is what the export suite needs of a backend: the exporter's
// store and the publish path that fills it.
type ExportStore interface {
	exporter.Store
	keyserver.ExposureStore
}

var exportT0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func testBatch(start time.Time) *exporter.Batch {
	return &exporter.Batch{
		Root: "r", Start: start, End: start.Add(time.Hour), Keys: 3, PaddingKeys: 997,
		SignatureInfos: []export.SignatureInfo{{KeyID: "310", KeyVersion: "v1"}},
		Files:          []exporter.FileRecord{{Name: "x.zip", Num: 1, ZipSHA256: exporter.Digest{1, 2}, BinSHA256: exporter.Digest{3}, Size: 99, Keys: 1000, Signatures: [][]byte{{0x30, 1}}}},
		Padding:        []byte("padding"), Revised: []byte("revised"), Created: start.Add(2 * time.Hour),
	}
}

func storeExposures(t *testing.T, s keyserver.ExposureStore, es ...*keyserver.Exposure) {
	t.Helper()
	keys := make([][keyserver.KeyLength]byte, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	err := s.Publish(context.Background(), keys, func(existing map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error) {
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

// TestExportStore runs the export-store conformance tests (exporter.Store's
// contract); open returns a fresh, empty store.
func TestExportStore(t *testing.T, open func(*testing.T) ExportStore) {
	t.Run("leases", func(t *testing.T) { testExportsLeases(t, open) })
	t.Run("concurrent acquires: one owner", func(t *testing.T) { testExportsConcurrentAcquiresOneOwner(t, open) })
	t.Run("batches and events", func(t *testing.T) { testExportsBatchesAndEvents(t, open) })
	t.Run("configs", func(t *testing.T) { testExportsConfigs(t, open) })
	t.Run("scan exposures", func(t *testing.T) { testExportsScanExposures(t, open) })
}

func testExportsLeases(t *testing.T, open func(*testing.T) ExportStore) {
	ctx := context.Background()
	db := open(t)
	ttl := 10 * time.Minute
	if err := db.AcquireLease(ctx, "w1", "A", exportT0, ttl); err != nil {
		t.Fatal(err)
	}
	if err := db.AcquireLease(ctx, "w1", "B", exportT0.Add(time.Minute), ttl); !errors.Is(err, exporter.ErrLeaseHeld) {
		t.Fatalf("B while A holds: %v, want ErrLeaseHeld", err)
	}
	if err := db.AcquireLease(ctx, "w2", "B", exportT0, ttl); err != nil {
		t.Fatalf("another lease: %v", err)
	}
	// The holder renews.
	if err := db.AcquireLease(ctx, "w1", "A", exportT0.Add(5*time.Minute), ttl); err != nil {
		t.Fatal(err)
	}
	if err := db.AcquireLease(ctx, "w1", "B", exportT0.Add(14*time.Minute), ttl); !errors.Is(err, exporter.ErrLeaseHeld) {
		t.Fatalf("B before the renewed lease expired: %v", err)
	}
	// Expired: B takes it; A's late release does not free B's lease.
	if err := db.AcquireLease(ctx, "w1", "B", exportT0.Add(15*time.Minute), ttl); err != nil {
		t.Fatalf("B after expiry: %v", err)
	}
	if err := db.ReleaseLease(ctx, "w1", "A"); err != nil {
		t.Fatal(err)
	}
	if err := db.AcquireLease(ctx, "w1", "C", exportT0.Add(16*time.Minute), ttl); !errors.Is(err, exporter.ErrLeaseHeld) {
		t.Fatalf("A's release freed B's lease: %v", err)
	}
	if err := db.ReleaseLease(ctx, "w1", "B"); err != nil {
		t.Fatal(err)
	}
	if err := db.AcquireLease(ctx, "w1", "C", exportT0.Add(16*time.Minute), ttl); err != nil {
		t.Fatalf("after B released: %v", err)
	}
}

func testExportsConcurrentAcquiresOneOwner(t *testing.T, open func(*testing.T) ExportStore) {
	ctx := context.Background()
	db := open(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var owners []string
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("o", i)
			err := db.AcquireLease(ctx, "w", owner, exportT0, time.Minute)
			if err == nil {
				mu.Lock()
				owners = append(owners, owner)
				mu.Unlock()
			} else if !errors.Is(err, exporter.ErrLeaseHeld) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(owners) != 1 {
		t.Fatalf("%d owners of one lease: %v", len(owners), owners)
	}
}

func testExportsBatchesAndEvents(t *testing.T, open func(*testing.T) ExportStore) {
	ctx := context.Background()
	db := open(t)
	for h := range 3 {
		b := testBatch(exportT0.Add(time.Duration(h) * time.Hour))
		lease := "lease-" + b.Start.Format(time.RFC3339)
		if err := db.AcquireLease(ctx, lease, "A", exportT0, time.Hour); err != nil {
			t.Fatal(err)
		}
		ev := []exporter.Event{{FilePublished: &exporter.FilePublished{Name: b.Files[0].Name, Start: b.Start}}}
		if err := db.CompleteBatch(ctx, b, lease, "A", ev); err != nil {
			t.Fatal(err)
		}
		// The lease is released with the record.
		if err := db.AcquireLease(ctx, lease, "B", exportT0, time.Hour); err != nil {
			t.Fatalf("lease not released by CompleteBatch: %v", err)
		}
		// Recording it again, or without the lease, fails.
		if err := db.CompleteBatch(ctx, b, lease, "A", nil); !errors.Is(err, exporter.ErrLeaseLost) {
			t.Fatalf("complete without the lease: %v", err)
		}
		if err := db.CompleteBatch(ctx, b, lease, "B", nil); !errors.Is(err, exporter.ErrLeaseLost) {
			t.Fatalf("complete twice: %v", err)
		}
	}
	full, err := db.Batch(ctx, "r", exportT0)
	if err != nil {
		t.Fatal(err)
	}
	if want := testBatch(exportT0); !reflect.DeepEqual(full, want) {
		t.Errorf("Batch = %+v\nwant %+v", full, want)
	}
	if _, err := db.Batch(ctx, "r", exportT0.Add(-time.Hour)); !errors.Is(err, exporter.ErrNotFound) {
		t.Errorf("missing batch: %v", err)
	}
	if _, err := db.Batch(ctx, "other", exportT0); !errors.Is(err, exporter.ErrNotFound) {
		t.Errorf("batch of another root: %v", err)
	}
	list, err := db.Batches(ctx, "r")
	if err != nil || len(list) != 3 {
		t.Fatalf("Batches: %d, %v", len(list), err)
	}
	for i, b := range list {
		if !b.Start.Equal(exportT0.Add(time.Duration(i)*time.Hour)) || b.Padding != nil || b.Revised != nil || b.Files[0].Name != "x.zip" {
			t.Errorf("summary %d: %+v", i, b)
		}
	}
	if l, _ := db.Batches(ctx, "r2"); len(l) != 0 {
		t.Errorf("root r2 sees %d batches of r", len(l))
	}
	// A lease that expired but nobody took is still the owner's.
	b := testBatch(exportT0.Add(10 * time.Hour))
	if err := db.CompleteBatch(ctx, b, "never-acquired", "A", nil); err != nil {
		t.Errorf("complete with an absent lease: %v", err)
	}

	gone, err := db.DeleteBatches(ctx, "r", exportT0.Add(2*time.Hour))
	if err != nil || len(gone) != 2 {
		t.Fatalf("DeleteBatches: %d, %v", len(gone), err)
	}
	for _, g := range gone {
		if g.Padding != nil || g.Revised != nil {
			t.Errorf("deleted batch returned with its keys: %+v", g)
		}
	}
	list, _ = db.Batches(ctx, "r")
	if len(list) != 2 || !list[0].Start.Equal(exportT0.Add(2*time.Hour)) {
		t.Errorf("left: %+v", list)
	}
	if _, err := db.Batch(ctx, "r", exportT0); !errors.Is(err, exporter.ErrNotFound) {
		t.Errorf("deleted batch still readable: %v", err)
	}
	if again, err := db.DeleteBatches(ctx, "r", exportT0.Add(2*time.Hour)); err != nil || len(again) != 0 {
		t.Errorf("second delete: %d, %v", len(again), err)
	}

	// The events of the three batches wait in order.
	evs, err := db.PendingEvents(ctx, 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("PendingEvents: %d, %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.ID == 0 || (i > 0 && ev.ID <= evs[i-1].ID) || !ev.FilePublished.Start.Equal(exportT0.Add(time.Duration(i)*time.Hour)) {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	root := exporter.RootAdded{Root: "r", Region: "R"}
	if err := db.AppendEvents(ctx, []exporter.Event{{Retention: &exporter.RetentionResult{KeysRemoved: 4}}, {RootAdded: &root}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AckEvent(ctx, evs[0].ID); err != nil {
		t.Fatal(err)
	}
	evs, _ = db.PendingEvents(ctx, 2)
	if len(evs) != 2 || evs[0].FilePublished == nil || !evs[0].FilePublished.Start.Equal(exportT0.Add(time.Hour)) {
		t.Errorf("after ack: %+v", evs)
	}
	evs, _ = db.PendingEvents(ctx, 10)
	if ev := evs[len(evs)-2]; ev.Retention == nil || ev.Retention.KeysRemoved != 4 || ev.ID <= evs[len(evs)-3].ID {
		t.Errorf("retention event %+v", ev)
	}
	if last := evs[len(evs)-1]; last.RootAdded == nil || *last.RootAdded != root || last.FilePublished != nil || last.Retention != nil {
		t.Errorf("root event %+v", last)
	}
	if err := db.AckEvent(ctx, 999999); err != nil {
		t.Errorf("acking an unknown event: %v", err)
	}
}

func testExportsConfigs(t *testing.T, open func(*testing.T) ExportStore) {
	ctx := context.Background()
	db := open(t)
	if _, err := db.ExportConfig(ctx, "b"); !errors.Is(err, exporter.ErrNotFound) {
		t.Fatalf("missing config: %v", err)
	}
	if list, err := db.ExportConfigs(ctx); err != nil || len(list) != 0 {
		t.Fatalf("empty store lists %d configs, %v", len(list), err)
	}
	for _, root := range []string{"b", "a"} {
		_, err := db.UpdateExportConfig(ctx, root, func(cur *exporter.Config) (*exporter.Config, error) {
			if cur != nil {
				t.Errorf("%s exists before creation", root)
			}
			return &exporter.Config{Root: root, Region: "R", Period: time.Hour}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("refused")
	if _, err := db.UpdateExportConfig(ctx, "a", func(cur *exporter.Config) (*exporter.Config, error) {
		if cur == nil || cur.Period != time.Hour {
			t.Errorf("update sees %+v", cur)
		}
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Errorf("failing update: %v", err)
	}
	if _, err := db.UpdateExportConfig(ctx, "a", func(cur *exporter.Config) (*exporter.Config, error) {
		return &exporter.Config{Root: "z"}, nil
	}); err == nil {
		t.Error("an update renaming the root was accepted")
	}
	list, err := db.ExportConfigs(ctx)
	if err != nil || len(list) != 2 || list[0].Root != "a" || list[1].Root != "b" {
		t.Fatalf("ExportConfigs: %+v, %v", list, err)
	}
	c, err := db.ExportConfig(ctx, "a")
	if err != nil || c.Region != "R" {
		t.Errorf("ExportConfig: %+v %v", c, err)
	}
	// Concurrent read-modify-writes lose no update.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.UpdateExportConfig(ctx, "a", func(cur *exporter.Config) (*exporter.Config, error) {
				next := *cur
				next.MinKeys++
				return &next, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c, _ := db.ExportConfig(ctx, "a"); c.MinKeys != 10 {
		t.Errorf("MinKeys = %d after 10 concurrent increments", c.MinKeys)
	}
}

func testExportsScanExposures(t *testing.T, open func(*testing.T) ExportStore) {
	ctx := context.Background()
	db := open(t)
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

	var got, regions []string
	skipped, err := db.ScanExportExposures(ctx, false, w0, w1, func(e *keyserver.Exposure) error {
		got = append(got, string(e.Key[:]))
		regions = append(regions, e.Region)
		if !e.CreatedAt.Equal(w0) || e.HealthAuthorityID != "app."+e.Region {
			t.Errorf("decoded %+v", e)
		}
		return nil
	})
	if err != nil || skipped != 0 {
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
		t.Errorf("regions %q", regions)
	}
	if n, err := db.CountExportExposures(ctx, false, w0, w1); err != nil || n != 5 {
		t.Errorf("count of w0: %d (%v), want 5", n, err)
	}
	var revised []*keyserver.Exposure
	_, err = db.ScanExportExposures(ctx, true, w1, w1.Add(time.Hour), func(e *keyserver.Exposure) error {
		c := *e
		revised = append(revised, &c)
		return nil
	})
	if err != nil || len(revised) != 1 || revised[0].Key != in0[0].Key || !revised[0].Revised || revised[0].RevisedReportType != keyserver.ReportConfirmed {
		t.Fatalf("revised scan: %+v, %v", revised, err)
	}
	if n, err := db.CountExportExposures(ctx, true, w1, w1.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("count of revisions in w1: %d (%v), want 1", n, err)
	}
	// fn's error stops the scan and comes back.
	stop := errors.New("stop")
	if _, err := db.ScanExportExposures(ctx, false, w0, w1, func(*keyserver.Exposure) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("scan error: %v", err)
	}
	// Retention: the revision of a deleted key is no longer visited.
	if n, err := db.DeleteExposuresCreatedBefore(ctx, w1); err != nil || n != 6 {
		t.Fatalf("retention deleted %d, %v; want 6", n, err)
	}
	n := 0
	if _, err := db.ScanExportExposures(ctx, true, w1, w1.Add(time.Hour), func(*keyserver.Exposure) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("revised scan after retention: %d, %v", n, err)
	}
}
