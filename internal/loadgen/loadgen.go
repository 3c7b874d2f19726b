// Package loadgen drives HTTP load against a Candor server and summarises
// throughput and latency. Requests are prebuilt so that client-side
// cryptography is not part of what is timed.
//
// Run sends one source of requests at one concurrency; RunLoads runs the
// loads of `candor loadtest` (publish, verify, download) at several, and
// WriteReport keeps their section of a Markdown page.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one prebuilt HTTP request.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Source hands out requests; it must be safe for concurrent use. Next
// returns false when no request is left.
type Source interface {
	Next() (*Request, bool)
}

// Slice is a Source over prebuilt requests, each used once.
type Slice struct {
	reqs []*Request
	i    atomic.Int64
}

// NewSlice returns a Source over reqs.
func NewSlice(reqs []*Request) *Slice { return &Slice{reqs: reqs} }

// Next implements Source.
func (s *Slice) Next() (*Request, bool) {
	i := s.i.Add(1) - 1
	if i >= int64(len(s.reqs)) {
		return nil, false
	}
	return s.reqs[i], true
}

// Result summarises one run.
type Result struct {
	Name        string
	Concurrency int
	Requests    int
	Errors      int // transport errors and statuses not accepted
	Statuses    map[int]int
	Elapsed     time.Duration
	P50         time.Duration
	P90         time.Duration
	P99         time.Duration
	Max         time.Duration
}

// RPS is the rate of completed requests.
func (r Result) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// String formats r as one line of `candor loadtest` output.
func (r Result) String() string {
	return fmt.Sprintf("%-22s c=%-3d %8.0f req/s  p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %7.2f ms  n=%d errors=%d",
		r.Name, r.Concurrency, r.RPS(), ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.Requests, r.Errors)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Run sends requests from src with concurrency workers until src is empty
// or duration has passed (whichever is first). ok decides which statuses
// count as success.
func Run(ctx context.Context, client *http.Client, name string, src Source, concurrency int, duration time.Duration, ok func(status int) bool) Result {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		statuses  = map[int]int{}
		errs      int
	)
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			localStatus := map[int]int{}
			localErrs := 0
			for ctx.Err() == nil {
				r, more := src.Next()
				if !more {
					break
				}
				t0 := time.Now()
				status, err := do(ctx, client, r)
				if ctx.Err() != nil {
					break // cut off by the deadline: not a result
				}
				local = append(local, time.Since(t0))
				if err != nil {
					localErrs++
					continue
				}
				localStatus[status]++
				if !ok(status) {
					localErrs++
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			for k, v := range localStatus {
				statuses[k] += v
			}
			errs += localErrs
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := summarise(latencies)
	res.Name, res.Concurrency, res.Errors, res.Statuses, res.Elapsed = name, concurrency, errs, statuses, elapsed
	return res
}

// summarise returns a Result with the count, percentiles and maximum of
// latencies, which it sorts.
func summarise(latencies []time.Duration) Result {
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(float64(len(latencies))*p))]
	}
	res := Result{Requests: len(latencies), P50: pct(.50), P90: pct(.90), P99: pct(.99)}
	if len(latencies) > 0 {
		res.Max = latencies[len(latencies)-1]
	}
	return res
}

func do(ctx context.Context, client *http.Client, r *Request) (int, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return 0, err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// NewClient returns an HTTP client that keeps enough idle connections for
// concurrency workers.
func NewClient(concurrency int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = concurrency * 2
	t.MaxIdleConnsPerHost = concurrency * 2
	t.MaxConnsPerHost = 0
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}
