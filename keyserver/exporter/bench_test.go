package exporter_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/keyserver/exporter"
)

// BenchmarkExport1M measures one export pass over a window of 1,000,000
// keys in a real bolt store (filled before the timer starts): read, sort,
// split into two files of 500,000, encode, sign, compress, write, fsync,
// record and index. Each iteration exports the window for a new
// configuration. It reports the peak Go heap during the passes.
//
//	go test -run x -bench Export1M -benchtime 3x ./keyserver/exporter/
//
// With CANDOR_BENCH_DATA=<dir> the filled data directory is kept there, for
// measuring the real command: /usr/bin/time -v candor export run --data <dir>.
func BenchmarkExport1M(b *testing.B) {
	benchmarkExport(b, 1_000_000)
}

func benchmarkExport(b *testing.B, n int) {
	f := newBenchFixture(b)
	es := exposures(n, "US-WA", win8.Start)
	f.publish(es...)
	es = nil
	runtime.GC()
	debug.FreeOSMemory()

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse // the store's in-memory key index, mostly
	peak := sampleHeap(b)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		f.addConfig(func(c *exporter.Config) { c.Root = fmt.Sprintf("bench-%d", i) })
		runtime.GC()
		b.StartTimer()
		res := f.pass()
		if r := res.Roots[len(res.Roots)-1]; r.Keys != n || r.Files != (n+499_999)/500_000 {
			b.Fatalf("pass: %+v", r)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(base)/(1<<20), "base-heap-MB")
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MB")
}

// newBenchFixture is a fixture whose data directory is CANDOR_BENCH_DATA
// when set (kept after the benchmark).
func newBenchFixture(b *testing.B) *fixture {
	if dir := os.Getenv("CANDOR_BENCH_DATA"); dir != "" {
		return newFixtureIn(b, dir)
	}
	return newFixture(b)
}

// sampleHeap samples the heap in use until the benchmark ends and returns a
// function reporting the maximum seen.
func sampleHeap(b *testing.B) func() uint64 {
	var maxHeap atomic.Uint64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > maxHeap.Load() {
				maxHeap.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	b.Cleanup(func() { close(done) })
	return maxHeap.Load
}

// BenchmarkServeZip measures the handler serving one listed export file of
// 1,000 keys from disk, as phones and CDNs fetch it, in process (no
// network): what the checks around each zip request cost.
//
//	go test -run x -bench ServeZip -cpu 1,4 ./keyserver/exporter/
func BenchmarkServeZip(b *testing.B) {
	f := newFixture(b)
	f.addConfig(func(c *exporter.Config) {})
	f.publish(exposures(10, "US-WA", win8.Start)...)
	f.pass()
	e := echo.New()
	exporter.NewHandler(f.x).Register(e)
	path := "/exports/" + f.index("us-wa")[0]
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d", path, rec.Code)
			}
		}
	})
}
