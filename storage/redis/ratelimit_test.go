package redis_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/internal/ratelimit"
	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/verification"
)

type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock    { c := &fakeClock{}; c.ns.Store(t.UnixNano()); return c }
func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// testRateLimits: two replicas (two clients, two Stores) share one bound;
// the counters and daily keys expire by themselves.
func testRateLimits(t *testing.T, rdb goredis.UniversalClient, prefix string) {
	ctx := context.Background()
	a, b := redis.New(rdb, redis.WithPrefix(prefix)), redis.New(rdb, redis.WithPrefix(prefix))
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	const limit = 40
	var wg sync.WaitGroup
	var passed atomic.Int64
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			key := "address:2026-11-20:abcd"
			n, err := redis.NewRateCounter(s).Hit(ctx, key, t0, time.Minute, t0.Add(10*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			if n <= limit {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != limit {
		t.Errorf("%d hits within a bound of %d across two replicas", passed.Load(), limit)
	}
	ka, err := redis.NewRateSecrets(a).DailyKey(ctx, "2026-11-20")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := redis.NewRateSecrets(b).DailyKey(ctx, "2026-11-20")
	if err != nil || string(ka) != string(kb) || len(ka) != 32 {
		t.Fatalf("replicas got different daily keys (%v)", err)
	}
	if kc, _ := redis.NewRateSecrets(a).DailyKey(ctx, "2026-11-21"); string(kc) == string(ka) {
		t.Error("two days share a key")
	}
	// Everything rate limiting stores expires: counters with their window,
	// keys after two days.
	keys, err := scanAll(ctx, rdb, prefix+":rl*")
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 48*time.Hour {
			t.Errorf("%s: TTL %v (%v)", k, ttl, err)
		}
	}
}

func scanAll(ctx context.Context, rdb goredis.UniversalClient, pattern string) ([]string, error) {
	var out []string
	var mu sync.Mutex
	scan := func(ctx context.Context, c *goredis.Client) error {
		it := c.Scan(ctx, 0, pattern, 100).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			out = append(out, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	if cc, ok := rdb.(*goredis.ClusterClient); ok {
		return out, cc.ForEachMaster(ctx, scan)
	}
	return out, scan(ctx, rdb.(*goredis.Client))
}

// testFailureLimiter: the shared bucket behaves as the in-memory
// AttemptLimiter, and two replicas share it.
func testFailureLimiter(t *testing.T, rdb goredis.UniversalClient, prefix string) {
	ck := newClock(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	a := redis.NewFailureLimiter(redis.New(rdb, redis.WithPrefix(prefix)), 5, time.Second, ck.now)
	b := redis.NewFailureLimiter(redis.New(rdb, redis.WithPrefix(prefix)), 5, time.Second, ck.now)
	mem := verification.NewAttemptLimiter(5, time.Second, ck.now)
	var l verification.FailureLimiter = a
	if l.MaxFailures(time.Minute) != mem.MaxFailures(time.Minute) {
		t.Errorf("MaxFailures %d, memory %d", l.MaxFailures(time.Minute), mem.MaxFailures(time.Minute))
	}
	for i := range 5 {
		r := []verification.FailureLimiter{a, b}[i%2]
		if ok, _ := r.Reserve("key1"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	ok, wait := a.Reserve("key1")
	if ok || wait < time.Second {
		t.Fatalf("6th attempt: %v %v", ok, wait)
	}
	if ok, _ := b.Reserve("key2"); !ok {
		t.Error("another key is bounded too")
	}
	b.Refund("key1")
	if ok, _ := a.Reserve("key1"); !ok {
		t.Error("a refunded attempt is not available")
	}
	if ok, _ := a.Reserve("key1"); ok {
		t.Error("more than the burst")
	}
	ck.add(2500 * time.Millisecond)
	for i := range 2 {
		if ok, _ := b.Reserve("key1"); !ok {
			t.Fatalf("regained attempt %d refused", i)
		}
	}
	if ok, _ := b.Reserve("key1"); ok {
		t.Error("regained more than one per interval")
	}
	// Concurrent reservations on both replicas: exactly the burst.
	var wg sync.WaitGroup
	var got atomic.Int64
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := []verification.FailureLimiter{a, b}[i%2].Reserve("key3"); ok {
				got.Add(1)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 5 {
		t.Errorf("%d concurrent reservations with a burst of 5", got.Load())
	}
}

var _ ratelimit.Counter = (*redis.RateCounter)(nil)
var _ ratelimit.Secrets = (*redis.RateSecrets)(nil)
var _ verification.FailureLimiter = (*redis.FailureLimiter)(nil)
