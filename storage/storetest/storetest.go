// Package storetest is the conformance suite for store backends: every
// backend (storage/memory, storage/bolt, and Redis) runs the same tests, so
// they behave the same, error for error.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
)

// ExposureStore is what the suite needs of an exposure backend.
type ExposureStore interface {
	keyserver.ExposureStore
	Exposure(ctx context.Context, key [keyserver.KeyLength]byte) (*keyserver.Exposure, error)
	// ScanExportExposures is the exporter's scan (exporter.ExposureSource).
	ScanExportExposures(ctx context.Context, revised bool, from, to time.Time, fn func(*keyserver.Exposure) error) (skipped int, err error)
	DeleteExposuresCreatedBefore(ctx context.Context, cutoff time.Time) (int, error)
}

var base = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func exposure(i int, created time.Time) *keyserver.Exposure {
	e := &keyserver.Exposure{
		IntervalNumber: 2_900_000 + int32(i)*144, IntervalCount: 144, TransmissionRisk: int32(i % 8),
		ReportType: keyserver.ReportLikely, DaysSinceOnset: int32(i%29 - 14), HasDaysSinceOnset: true,
		Traveler: i%2 == 0, Region: "US-WA", HealthAuthorityID: "app", CreatedAt: created,
	}
	e.Key[0], e.Key[1], e.Key[15] = byte(i>>8), byte(i), 0xAA
	e.UploadTag[0], e.UploadTag[15] = byte(i), 0x55
	return e
}

func insert(t *testing.T, s ExposureStore, es ...*keyserver.Exposure) {
	t.Helper()
	keys := make([][keyserver.KeyLength]byte, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	err := s.Publish(context.Background(), keys, func(existing map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error) {
		if len(existing) != 0 {
			return nil, fmt.Errorf("unexpected existing keys")
		}
		return &keyserver.Change{Insert: es}, nil
	})
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
}

func collect(t *testing.T, scan func(context.Context, time.Time, time.Time, func(*keyserver.Exposure) error) error, from, to time.Time) []*keyserver.Exposure {
	t.Helper()
	var out []*keyserver.Exposure
	if err := scan(context.Background(), from, to, func(e *keyserver.Exposure) error { out = append(out, e); return nil }); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

// TestExposures runs the exposure-store conformance tests; open returns a
// fresh, empty store.
func TestExposures(t *testing.T, open func(t *testing.T) ExposureStore) {
	ctx := context.Background()
	t.Run("insert and read back", func(t *testing.T) {
		s := open(t)
		want := exposure(1, base.Add(time.Hour))
		insert(t, s, want)
		got, err := s.Exposure(ctx, want.Key)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *want {
			t.Errorf("read back %+v, want %+v", got, want)
		}
		if _, err := s.Exposure(ctx, [16]byte{9}); !errors.Is(err, keyserver.ErrNotFound) {
			t.Errorf("unknown key: %v, want ErrNotFound", err)
		}
	})
	t.Run("created range is half-open and ordered", func(t *testing.T) {
		s := open(t)
		for i := range 5 {
			insert(t, s, exposure(i, base.Add(time.Duration(4-i)*time.Hour)))
		}
		got := collect(t, createdScan(s), base.Add(time.Hour), base.Add(4*time.Hour))
		if len(got) != 3 {
			t.Fatalf("got %d exposures in [1h, 4h), want 3", len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i].CreatedAt.Before(got[i-1].CreatedAt) {
				t.Errorf("not in creation order")
			}
		}
	})
	t.Run("a refused plan writes nothing", func(t *testing.T) {
		s := open(t)
		e := exposure(1, base)
		perr := &api.Error{Code: api.CodeInvalidRevisionToken, Message: "no"}
		err := s.Publish(ctx, [][16]byte{e.Key}, func(map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) { return nil, perr })
		var got *api.Error
		if !errors.As(err, &got) || got.Code != api.CodeInvalidRevisionToken {
			t.Fatalf("error %v, want the plan's error", err)
		}
		if n := len(collect(t, createdScan(s), base.Add(-time.Hour), base.Add(time.Hour))); n != 0 {
			t.Errorf("%d exposures after a refused plan", n)
		}
	})
	t.Run("existing keys are passed to the plan and revisions indexed", func(t *testing.T) {
		s := open(t)
		e := exposure(1, base)
		insert(t, s, e)
		var seen *keyserver.Exposure
		err := s.Publish(ctx, [][16]byte{e.Key, {7}}, func(existing map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) {
			if len(existing) != 1 {
				return nil, fmt.Errorf("existing = %d entries, want 1", len(existing))
			}
			seen = existing[e.Key]
			rev := *seen
			rev.Revised, rev.RevisedReportType, rev.RevisedAt = true, keyserver.ReportConfirmed, base.Add(2*time.Hour)
			return &keyserver.Change{Revise: []*keyserver.Exposure{&rev}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen == nil || *seen != *e {
			t.Fatalf("plan saw %+v, want %+v", seen, e)
		}
		revised := collect(t, revisedScan(s), base.Add(2*time.Hour), base.Add(3*time.Hour))
		if len(revised) != 1 || revised[0].RevisedReportType != keyserver.ReportConfirmed {
			t.Fatalf("revised scan = %+v", revised)
		}
		if n := len(collect(t, revisedScan(s), base, base.Add(2*time.Hour))); n != 0 {
			t.Errorf("revision outside its window: %d", n)
		}
		got, _ := s.Exposure(ctx, e.Key)
		if !got.Revised || got.ReportType != keyserver.ReportLikely {
			t.Errorf("stored after revision: %+v", got)
		}
	})
	t.Run("concurrent inserts of one key: exactly one wins", func(t *testing.T) {
		s := open(t)
		e := exposure(42, base)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Publish(ctx, [][16]byte{e.Key}, func(existing map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) {
					if existing[e.Key] != nil {
						return &keyserver.Change{}, nil
					}
					c := *e
					return &keyserver.Change{Insert: []*keyserver.Exposure{&c}}, nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		n := len(collect(t, createdScan(s), base.Add(-time.Hour), base.Add(time.Hour)))
		if n != 1 {
			t.Fatalf("%d copies of one key stored, want 1", n)
		}
	})
	t.Run("one window's order links no key to its upload", func(t *testing.T) { testExposureOrder(t, open(t)) })
	t.Run("retention deletes before the cutoff", func(t *testing.T) {
		s := open(t)
		for i := range 6 {
			insert(t, s, exposure(i, base.Add(time.Duration(i)*24*time.Hour)))
		}
		n, err := s.DeleteExposuresCreatedBefore(ctx, base.Add(3*24*time.Hour))
		if err != nil || n != 3 {
			t.Fatalf("deleted %d (%v), want 3", n, err)
		}
		if got := len(collect(t, createdScan(s), base.Add(-time.Hour), base.Add(10*24*time.Hour))); got != 3 {
			t.Errorf("%d left, want 3", got)
		}
		if _, err := s.Exposure(ctx, exposure(0, base).Key); !errors.Is(err, keyserver.ErrNotFound) {
			t.Errorf("deleted key still found: %v", err)
		}
		// A deleted key can be uploaded again (it is new to the store).
		insert(t, s, exposure(0, base.Add(7*24*time.Hour)))
	})
}

// TestAuthorities runs the authority-store conformance tests.
func TestAuthorities(t *testing.T, open func(t *testing.T) keyserver.AuthorityStore) {
	ctx := context.Background()
	s := open(t)
	if _, err := s.HealthAuthority(ctx, "nope"); !errors.Is(err, keyserver.ErrNotFound) {
		t.Errorf("unknown authority: %v", err)
	}
	if _, err := s.App(ctx, "nope"); !errors.Is(err, keyserver.ErrNotFound) {
		t.Errorf("unknown app: %v", err)
	}
	ha := &keyserver.HealthAuthority{Issuer: "iss", Audience: "aud", JWKSURL: "http://x/jwks",
		Keys: []keyserver.AuthorityKey{{Version: "v1", PEM: "pem", From: base, Thru: base.Add(time.Hour)}}}
	if err := s.PutHealthAuthority(ctx, ha); err != nil {
		t.Fatal(err)
	}
	got, err := s.HealthAuthority(ctx, "iss")
	if err != nil || got.Audience != "aud" || len(got.Keys) != 1 || !got.Keys[0].Thru.Equal(base.Add(time.Hour)) {
		t.Fatalf("authority read back %+v, %v", got, err)
	}
	all, err := s.HealthAuthorities(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("list: %d, %v", len(all), err)
	}
	if err := s.PutApp(ctx, &keyserver.App{ID: "app", Authorities: []string{"iss"}, Region: "R"}); err != nil {
		t.Fatal(err)
	}
	app, err := s.App(ctx, "app")
	if err != nil || app.Region != "R" || !app.Allows("iss") {
		t.Fatalf("app read back %+v, %v", app, err)
	}
	apps, err := s.Apps(ctx)
	if err != nil || len(apps) != 1 {
		t.Fatalf("apps: %d, %v", len(apps), err)
	}
}

// createdScan and revisedScan are the exporter's scans of s over exposures created,
// or revised, in [from, to), in the form collect takes. The scan may reuse
// the *Exposure it passes, so each is copied.
func createdScan(s ExposureStore) func(context.Context, time.Time, time.Time, func(*keyserver.Exposure) error) error {
	return scanOf(s, false)
}

func revisedScan(s ExposureStore) func(context.Context, time.Time, time.Time, func(*keyserver.Exposure) error) error {
	return scanOf(s, true)
}

func scanOf(s ExposureStore, revised bool) func(context.Context, time.Time, time.Time, func(*keyserver.Exposure) error) error {
	return func(ctx context.Context, from, to time.Time, fn func(*keyserver.Exposure) error) error {
		_, err := s.ScanExportExposures(ctx, revised, from, to, func(e *keyserver.Exposure) error {
			c := *e
			return fn(&c)
		})
		return err
	}
}
