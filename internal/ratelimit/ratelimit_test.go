package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/internal/ratelimit"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newServer(l *ratelimit.Limiter, rules ...ratelimit.Rule) *echo.Echo {
	e := echo.New()
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(ratelimit.Middleware(l, func(c echo.Context, r ratelimit.Result) error {
		return c.String(http.StatusTooManyRequests, "slow down "+r.Rule)
	}, func(c echo.Context) []ratelimit.Rule {
		if c.Path() == "/free" {
			return nil
		}
		return rules
	}))
	e.POST("/api", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.POST("/free", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	return e
}

func do(e *echo.Echo, path, addr, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, nil)
	req.RemoteAddr = addr + ":1234"
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// TestLimits: per address and per key, with the headers, Retry-After on
// 429, a fresh window after the reset, and routes without rules untouched.
func TestLimits(t *testing.T) {
	ck := &clock{t: time.Date(2026, 11, 20, 10, 0, 10, 0, time.UTC)}
	l := ratelimit.New(ratelimit.NewMemoryCounter(), ratelimit.NewMemorySecrets(), ratelimit.Options{Now: ck.now})
	e := newServer(l,
		ratelimit.Rule{Name: "address", Limit: 3, Window: time.Minute, Key: ratelimit.AddressKey},
		ratelimit.Rule{Name: "key", Limit: 5, Window: time.Minute, Key: ratelimit.HeaderKey("X-API-Key")},
	)
	for i := range 3 {
		rec := do(e, "/api", "192.0.2.1", "k1")
		if rec.Code != http.StatusOK {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
		if got := rec.Header().Get("X-RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Errorf("request %d: remaining %q, want %d (the address bound is the tighter)", i, got, 2-i)
		}
		if rec.Header().Get("X-RateLimit-Limit") != "3" || rec.Header().Get("X-RateLimit-Reset") != "50" {
			t.Errorf("request %d: headers %v", i, rec.Header())
		}
	}
	rec := do(e, "/api", "192.0.2.1", "k1")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "50" || rec.Body.String() != "slow down address" {
		t.Fatalf("4th request from one address: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
	// Another address with the same key: the key has 1 of 5 left.
	rec = do(e, "/api", "192.0.2.2", "k1")
	if rec.Code != http.StatusOK || rec.Header().Get("X-RateLimit-Remaining") != "0" || rec.Header().Get("X-RateLimit-Limit") != "5" {
		t.Fatalf("other address: %d %v", rec.Code, rec.Header())
	}
	if rec := do(e, "/api", "192.0.2.3", "k1"); rec.Code != http.StatusTooManyRequests || rec.Body.String() != "slow down key" {
		t.Fatalf("6th request with one key: %d %q", rec.Code, rec.Body)
	}
	if rec := do(e, "/api", "192.0.2.3", "k2"); rec.Code != http.StatusOK {
		t.Fatalf("another key: %d", rec.Code)
	}
	if rec := do(e, "/free", "192.0.2.1", "k1"); rec.Code != http.StatusOK || rec.Header().Get("X-RateLimit-Limit") != "" {
		t.Fatalf("a route without rules: %d %v", rec.Code, rec.Header())
	}
	ck.add(50 * time.Second) // the next window
	if rec := do(e, "/api", "192.0.2.1", "k1"); rec.Code != http.StatusOK || rec.Header().Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("next window: %d %v", rec.Code, rec.Header())
	}
}

// TestNoClearIdentifiers: the counter never sees an address or key, and the
// names change with the day.
func TestNoClearIdentifiers(t *testing.T) {
	ck := &clock{t: time.Date(2026, 11, 20, 23, 59, 0, 0, time.UTC)}
	rec := &recordingCounter{}
	l := ratelimit.New(rec, ratelimit.NewMemorySecrets(), ratelimit.Options{Now: ck.now})
	e := newServer(l, ratelimit.Rule{Name: "address", Limit: 10, Window: time.Minute, Key: ratelimit.AddressKey},
		ratelimit.Rule{Name: "key", Limit: 10, Window: time.Minute, Key: ratelimit.HeaderKey("X-API-Key")})
	do(e, "/api", "198.51.100.7", "secret-api-key")
	ck.add(2 * time.Minute) // the next UTC day
	do(e, "/api", "198.51.100.7", "secret-api-key")
	if len(rec.keys) != 4 {
		t.Fatalf("keys %q", rec.keys)
	}
	for _, k := range rec.keys {
		for _, clear := range []string{"198.51.100.7", "secret-api-key", "secret"} {
			if contains(k, clear) {
				t.Errorf("counter key %q holds %q", k, clear)
			}
		}
	}
	if rec.keys[0] == rec.keys[2] {
		t.Error("the same address has the same name on two days")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

type recordingCounter struct {
	mu   sync.Mutex
	keys []string
}

func (r *recordingCounter) Hit(_ context.Context, key string, _ time.Time, _ time.Duration, _ time.Time) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, key)
	return 1, nil
}

type failingCounter struct{}

func (failingCounter) Hit(context.Context, string, time.Time, time.Duration, time.Time) (int64, error) {
	return 0, errors.New("down")
}

// TestFailOpen: a counter that fails lets requests through and reports.
func TestFailOpen(t *testing.T) {
	var errs int
	l := ratelimit.New(failingCounter{}, ratelimit.NewMemorySecrets(), ratelimit.Options{OnError: func(error) { errs++ }})
	e := newServer(l, ratelimit.Rule{Name: "address", Limit: 1, Window: time.Minute, Key: ratelimit.AddressKey})
	for range 3 {
		if rec := do(e, "/api", "192.0.2.1", ""); rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if errs != 3 {
		t.Errorf("%d errors reported", errs)
	}
}

// TestMemoryCounterForgets: windows that ended are dropped.
func TestMemoryCounterForgets(t *testing.T) {
	c := ratelimit.NewMemoryCounter()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for i := range 100 {
		c.Hit(ctx, strconv.Itoa(i), t0, time.Minute, t0)
	}
	c.Hit(ctx, "late", t0.Add(5*time.Minute), time.Minute, t0.Add(5*time.Minute))
	if n := c.Len(); n != 1 {
		t.Errorf("%d counts kept, want 1", n)
	}
}

// TestConcurrent: the bound holds under concurrent requests.
func TestConcurrent(t *testing.T) {
	ck := &clock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	l := ratelimit.New(ratelimit.NewMemoryCounter(), ratelimit.NewMemorySecrets(), ratelimit.Options{Now: ck.now})
	e := newServer(l, ratelimit.Rule{Name: "address", Limit: 50, Window: time.Hour, Key: ratelimit.AddressKey})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if do(e, "/api", "192.0.2.9", "").Code == http.StatusOK {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 50 {
		t.Errorf("%d requests passed a bound of 50", ok)
	}
}

// TestClientKey: the key of a client is the HMAC of its address, the same
// for every request of one address (an IPv6 client: of one /64) and
// different for another, and holds no address.
func TestClientKey(t *testing.T) {
	l := ratelimit.New(nil, ratelimit.NewMemorySecrets(), ratelimit.Options{})
	e := echo.New()
	e.IPExtractor = echo.ExtractIPDirect()
	key := func(remote string) string {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.RemoteAddr = remote
		k, err := l.ClientKey(e.NewContext(req, httptest.NewRecorder()), "verify-failures")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, "192.0.2") || strings.Contains(k, "2001:db8") {
			t.Fatalf("key %q holds the address", k)
		}
		return k
	}
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"one IPv4 address, two ports", "192.0.2.1:1000", "192.0.2.1:2000", true},
		{"two IPv4 addresses", "192.0.2.1:1000", "192.0.2.2:1000", false},
		{"one IPv6 /64", "[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:1000", true},
		{"two IPv6 /64s", "[2001:db8:1:2::1]:1000", "[2001:db8:1:3::1]:1000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := key(tc.a) == key(tc.b); got != tc.same {
				t.Errorf("same key: %v, want %v", got, tc.same)
			}
		})
	}
}
