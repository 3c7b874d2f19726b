package verification

import (
	"math"
	"sync"
	"time"
)

// FailureLimiter bounds failed code redemptions per key. Verify reserves an
// attempt before looking a code up and refunds it unless the attempt
// failed, so the bound holds however many requests run at once. The service
// uses two: one per client (the HMAC of its address under the day's key) in
// front of a much larger ceiling per API key, so that a client who burns its
// budget locks out only itself, and many clients together can still make
// no more guesses than the ceiling.
type FailureLimiter interface {
	// Reserve takes one attempt for key; when none is left it returns false
	// and how long until one is.
	Reserve(key string) (ok bool, retryAfter time.Duration)
	// Refund returns an attempt that did not fail.
	Refund(key string)
	// MaxFailures is the most failed attempts one key can make in d.
	MaxFailures(d time.Duration) int
}

// Defaults of the failure budget: per client (DefaultFailure*) and the
// ceiling per API key (DefaultKeyFailure*).
const (
	DefaultFailureBurst       = 20
	DefaultFailureInterval    = 10 * time.Second
	DefaultKeyFailureBurst    = 1000
	DefaultKeyFailureInterval = time.Second
)

// AttemptLimiter is the in-memory FailureLimiter of a single process (the
// embedded deployment): a token bucket per key holding at most Burst
// attempts, one regained every Interval.
type AttemptLimiter struct {
	burst    float64
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewAttemptLimiter returns a limiter allowing burst failed attempts at once
// and one more every interval; zero values take the per-client defaults.
// now is the clock (time.Now when nil).
func NewAttemptLimiter(burst int, interval time.Duration, now func() time.Time) *AttemptLimiter {
	if burst <= 0 {
		burst = DefaultFailureBurst
	}
	if interval <= 0 {
		interval = DefaultFailureInterval
	}
	if now == nil {
		now = time.Now
	}
	return &AttemptLimiter{burst: float64(burst), interval: interval, now: now, buckets: map[string]*bucket{}}
}

// refill brings b up to date at now.
func (l *AttemptLimiter) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+float64(elapsed)/float64(l.interval))
	}
	b.at = now
}

// Reserve implements FailureLimiter.
func (l *AttemptLimiter) Reserve(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) * float64(l.interval))
		return false, max(wait, time.Second)
	}
	b.tokens--
	return true, 0
}

// Refund implements FailureLimiter.
func (l *AttemptLimiter) Refund(key string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		l.refill(b, now)
		b.tokens = math.Min(l.burst, b.tokens+1)
	}
}

// MaxFailures implements FailureLimiter: burst + d/interval.
func (l *AttemptLimiter) MaxFailures(d time.Duration) int {
	return int(l.burst) + int(d/l.interval)
}

// Sweep forgets keys whose bucket is full again, bounding memory.
func (l *AttemptLimiter) Sweep() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// BruteForceBound is the guaranteed upper bound on the probability that
// clients holding one API key guess a given short code of the realm within
// the code's lifetime, however many addresses they use: l is the ceiling
// per API key, and the bound is MaxFailures(lifetime) failed guesses and a
// last successful one among 10^length equally likely codes. With the
// defaults (8 digits, 15 minutes, a ceiling of 1,000 and one attempt a
// second) it is 1,901 / 10^8 ≈ 1.9e-5; with the per-client limiter as l
// (20 and one every 10 s) it is the bound for one address: 111 / 10^8 ≈
// 1.1e-6. The chance of hitting any of N codes valid at once is at most N
// times that.
func BruteForceBound(r *Realm, l FailureLimiter) float64 {
	return float64(l.MaxFailures(r.ShortCodeLifetime)+1) / math.Pow10(r.ShortCodeLength)
}
