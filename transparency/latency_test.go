package transparency

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyset"
)

// latencies are the measured delays of events, each from Record to the
// entry being durable and to a published checkpoint covering it.
type latencies struct {
	durable, published []time.Duration
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// measureLatency records events at rate per second for duration (one event
// at a time, spaced by a second, when rate is 0) and returns their
// latencies. A watcher reads the checkpoint every millisecond, as a client
// polling it would.
func measureLatency(ctx context.Context, l *Log, rate int, events int) (latencies, error) {
	var mu sync.Mutex
	start := map[uint64]time.Time{}
	durable := map[uint64]time.Duration{}
	published := map[uint64]time.Time{}
	base := l.Size()

	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		seen := base
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if cp, err := l.Checkpoint(ctx); err == nil && cp.Size > seen {
				now := time.Now()
				mu.Lock()
				for i := seen; i < cp.Size; i++ {
					published[i] = now
				}
				mu.Unlock()
				seen = cp.Size
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, events)
	record := func(i int) {
		defer wg.Done()
		t0 := time.Now()
		idx, err := l.Record(ctx, latencyEvent(i))
		if err != nil {
			errs <- err
			return
		}
		mu.Lock()
		start[idx], durable[idx] = t0, time.Since(t0)
		mu.Unlock()
	}
	if rate == 0 {
		for i := range events {
			wg.Add(1)
			record(i)
			if _, err := l.AwaitPublished(ctx, base+uint64(i)); err != nil {
				return latencies{}, err
			}
			time.Sleep(time.Second)
		}
	} else {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		for i := range events {
			wg.Add(1)
			go record(i)
			<-tick.C
		}
		tick.Stop()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return latencies{}, err
	}
	if _, err := l.AwaitPublished(ctx, base+uint64(events)-1); err != nil {
		return latencies{}, err
	}
	time.Sleep(5 * time.Millisecond)
	close(stop)
	<-watched

	var out latencies
	mu.Lock()
	defer mu.Unlock()
	for idx, t0 := range start {
		p, ok := published[idx]
		if !ok {
			return latencies{}, fmt.Errorf("entry %d: no checkpoint seen", idx)
		}
		out.durable = append(out.durable, durable[idx])
		out.published = append(out.published, p.Sub(t0))
	}
	return out, nil
}

func latencyEvent(i int) logentry.Body {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
	return logentry.ExportPublished{
		File:   fmt.Sprintf("bench/%d-%d-00001.zip", start.Unix(), start.Add(time.Hour).Unix()),
		Region: "US", WindowStart: start, WindowEnd: start.Add(time.Hour), FileNum: 1, FileCount: 1,
		ZipSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		BinSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Size:      30000, Keys: 1000, SigningKeys: []logentry.KeyRef{{KeyID: "310", KeyVersion: "v1"}},
	}
}

// BenchmarkCheckpointLatency measures, at the default Options, how long an
// event takes from Record to durable and to a published checkpoint that
// covers it: single events on an idle log, and 1,000 events/s sustained for
// 10 s. Run it with
//
//	go test ./transparency -run '^$' -bench CheckpointLatency -benchtime 1x
//
// (set CANDOR_BENCH_DIR to put the log on a given file system).
func BenchmarkCheckpointLatency(b *testing.B) {
	for _, tc := range []struct {
		name   string
		rate   int
		events int
	}{
		{"idle", 0, 20},
		{"1000_per_s", 1000, 10_000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			if d := os.Getenv("CANDOR_BENCH_DIR"); d != "" {
				var err error
				if dir, err = os.MkdirTemp(d, "tlog-bench-"); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
			}
			master, err := keyset.OpenMasterFile(filepath.Join(b.TempDir(), "master.key"))
			if err != nil {
				b.Fatal(err)
			}
			l, err := Open(ctx, Options{Dir: filepath.Join(dir, "log"), Driver: posixDriver(filepath.Join(dir, "log")), Keys: keyset.NewMemStore(), Master: master, Origin: "bench.example/log"})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(ctx)
			// Let the first checkpoint age, as on a running server.
			time.Sleep(DefaultCheckpointInterval)
			var all latencies
			for range b.N {
				lat, err := measureLatency(ctx, l, tc.rate, tc.events)
				if err != nil {
					b.Fatal(err)
				}
				all.durable = append(all.durable, lat.durable...)
				all.published = append(all.published, lat.published...)
			}
			b.ReportMetric(float64(percentile(all.durable, 0.5).Microseconds())/1000, "durable-p50-ms")
			b.ReportMetric(float64(percentile(all.durable, 0.99).Microseconds())/1000, "durable-p99-ms")
			b.ReportMetric(float64(percentile(all.published, 0.5).Microseconds())/1000, "published-p50-ms")
			b.ReportMetric(float64(percentile(all.published, 0.99).Microseconds())/1000, "published-p99-ms")
			b.ReportMetric(float64(slices.Max(all.published).Microseconds())/1000, "published-max-ms")
		})
	}
}

// TestCheckpointLatencyBound checks the promise of the defaults on a
// short burst: every event is covered by a published checkpoint within 2 s.
func TestCheckpointLatencyBound(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	ctx := context.Background()
	f := newFixture(t)
	opts := f.options()
	opts.BatchMaxAge, opts.CheckpointInterval = DefaultBatchMaxAge, DefaultCheckpointInterval
	l, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	lat, err := measureLatency(ctx, l, 200, 300)
	if err != nil {
		t.Fatal(err)
	}
	if worst := slices.Max(lat.published); worst > 2*time.Second {
		t.Errorf("an event took %v to reach a published checkpoint (p50 %v)", worst, percentile(lat.published, 0.5))
	}
}
