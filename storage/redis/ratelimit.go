package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Rate limiting state, shared by every replica:
//
//	<prefix>:rl:<rule>:<day>:<hmac>:<window start>  counter, expires with its window
//	<prefix>:rlkey:<day>                          the day's random HMAC key, expires after 48 h
//	<prefix>:fail:client:<rule>:<day>:<hmac>      hash: tokens, at (Unix ms), the
//	                                              failed-redemption bucket of a client
//	                                              (its address HMAC'd as in rl:)
//	<prefix>:fail:key:<API key ID>                the same, the ceiling of an API key
//
// Each is a single key, so they spread over a cluster's slots.

// hitScript counts a hit and sets the counter's TTL on the first.
var hitScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// RateCounter implements ratelimit.Counter on Redis.
type RateCounter struct{ s *Store }

// NewRateCounter returns the rate-limit counter on s.
func NewRateCounter(s *Store) *RateCounter { return &RateCounter{s: s} }

// Hit implements ratelimit.Counter: INCR, with a TTL until the window ends
// (on the caller's clock) plus a second.
func (r *RateCounter) Hit(ctx context.Context, key string, start time.Time, d time.Duration, now time.Time) (int64, error) {
	ttl := start.Add(d).Sub(now) + time.Second
	k := r.s.prefix + ":rl:" + key + ":" + strconv.FormatInt(start.Unix(), 10)
	n, err := hitScript.Run(ctx, r.s.rdb, []string{k}, max(ttl, time.Second).Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("rate counter: %w", err)
	}
	return n, nil
}

// dailyKeyTTL is how long a day's HMAC key lives: its day and the next.
const dailyKeyTTL = 48 * time.Hour

// RateSecrets implements ratelimit.Secrets on Redis: the first replica to
// need a day's key creates it (SET NX with a 48-hour TTL) and every replica
// reads that one; Redis forgets it afterwards.
type RateSecrets struct {
	s *Store

	mu    sync.Mutex
	day   string
	cache []byte
}

// NewRateSecrets returns the shared daily keys on s.
func NewRateSecrets(s *Store) *RateSecrets { return &RateSecrets{s: s} }

// DailyKey implements ratelimit.Secrets.
func (r *RateSecrets) DailyKey(ctx context.Context, day string) ([]byte, error) {
	r.mu.Lock()
	if r.day == day {
		k := r.cache
		r.mu.Unlock()
		return k, nil
	}
	r.mu.Unlock()
	key := r.s.prefix + ":rlkey:" + day
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if err := r.s.rdb.SetNX(ctx, key, fresh, dailyKeyTTL).Err(); err != nil {
		return nil, fmt.Errorf("rate limit key: %w", err)
	}
	k, err := r.s.rdb.Get(ctx, key).Bytes()
	if err != nil {
		return nil, fmt.Errorf("rate limit key: %w", err)
	}
	r.mu.Lock()
	r.day, r.cache = day, k
	r.mu.Unlock()
	return k, nil
}

// FailureLimiter implements verification.FailureLimiter on Redis: the token
// bucket of each key, a client or an API key (at most burst failed
// redemptions at once, one more every interval), is one hash that every replica updates with a
// script, so the bound holds across all of them.
type FailureLimiter struct {
	s        *Store
	burst    int
	interval time.Duration
	now      func() time.Time
	timeout  time.Duration
}

// NewFailureLimiter returns the shared failure limiter on s; now is the
// clock (time.Now when nil).
func NewFailureLimiter(s *Store, burst int, interval time.Duration, now func() time.Time) *FailureLimiter {
	if now == nil {
		now = time.Now
	}
	return &FailureLimiter{s: s, burst: burst, interval: interval, now: now, timeout: 2 * time.Second}
}

// bucketScript takes (ARGV[4] = -1) or returns (+1) one token of the
// bucket. KEYS: bucket. ARGV: burst, interval ms, now ms, delta, TTL ms.
// Returns {1, 0} when a token was taken or returned, {0, wait ms} when none
// is left.
var bucketScript = goredis.NewScript(`
local burst, interval, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(s[1]), tonumber(s[2])
if not tokens then
  if ARGV[4] == '1' then return {1, 0} end
  tokens, at = burst, now
end
if now > at then tokens = math.min(burst, tokens + (now - at) / interval); at = now end
if ARGV[4] == '-1' then
  if tokens < 1 then return {0, math.ceil((1 - tokens) * interval)} end
  tokens = tokens - 1
else
  tokens = math.min(burst, tokens + 1)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0}
`)

func (f *FailureLimiter) run(key string, delta int) (bool, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	// A full bucket is forgotten: keep it while it refills.
	ttl := time.Duration(f.burst+1)*f.interval + time.Minute
	res, err := bucketScript.Run(ctx, f.s.rdb, []string{f.s.prefix + ":fail:" + key},
		f.burst, f.interval.Milliseconds(), f.now().UnixMilli(), delta, ttl.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		// Fail closed: an attempt that cannot be counted is refused; the
		// code could not be looked up either with the store unreachable.
		return false, time.Second
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond
}

// Reserve implements verification.FailureLimiter.
func (f *FailureLimiter) Reserve(key string) (bool, time.Duration) {
	ok, wait := f.run(key, -1)
	if !ok {
		return false, max(wait, time.Second)
	}
	return true, 0
}

// Refund implements verification.FailureLimiter.
func (f *FailureLimiter) Refund(key string) { f.run(key, 1) }

// MaxFailures implements verification.FailureLimiter: burst + d/interval.
func (f *FailureLimiter) MaxFailures(d time.Duration) int {
	return f.burst + int(d/f.interval)
}
