// Package ratelimit bounds how many requests one client makes: per device
// API key, per admin API key and per client address, each in fixed windows
// (for example 600 requests a minute). The counts live in a Counter: in
// memory for the embedded deployment (MemoryCounter), in Redis when several
// replicas must share one bound (storage/redis). Middleware applies the
// rules to echo routes and answers X-RateLimit-Limit, X-RateLimit-Remaining
// and X-RateLimit-Reset (seconds until the window ends) on every response it
// counted, and 429 with Retry-After when a bound is reached.
//
// No client identifier is counted in clear. Addresses (an IPv6 client's
// /64) and API keys are HMAC-SHA256'd under a key that changes every UTC
// day (Secrets), and so are the clients of bounds kept elsewhere
// (Limiter.ClientKey: the verification service's failure budget); the daily
// keys are random, kept for two days and then forgotten, and a counter is
// forgotten when its window ends. So what a Counter holds cannot be linked
// to an address once the day is over, and never reveals an API key.
package ratelimit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// Counter counts hits per key and window.
type Counter interface {
	// Hit adds one to the count of key in the window [start, start+d) and
	// returns the new count. now is the caller's clock; a count is kept at
	// least until the window ends and may be forgotten after.
	Hit(ctx context.Context, key string, start time.Time, d time.Duration, now time.Time) (int64, error)
}

// Secrets gives the HMAC key of a UTC day. Every replica must get the same
// key for the same day, and a key must be unrecoverable once its day and
// the next are over.
type Secrets interface {
	DailyKey(ctx context.Context, day string) ([]byte, error)
}

// Rule is one bound: at most Limit requests per Window for each client that
// Key identifies.
type Rule struct {
	// Name names the rule in counter keys and metrics: "address",
	// "device-key", "admin-key".
	Name   string
	Limit  int
	Window time.Duration
	// Key returns what identifies the client of the request (an address,
	// an API key), or false when the rule does not apply to it.
	Key func(c echo.Context) (string, bool)
}

// Enabled reports whether the rule bounds anything.
func (r Rule) Enabled() bool { return r.Limit > 0 && r.Window > 0 && r.Key != nil }

// Result is the state of the most constraining rule after a request.
type Result struct {
	// Rule is the name of the rule; empty when no rule applied.
	Rule      string
	Allowed   bool
	Limit     int
	Remaining int
	// Reset is how long until the window ends.
	Reset time.Duration
}

// Limiter checks requests against rules.
type Limiter struct {
	counter Counter
	secrets Secrets
	now     func() time.Time
	onError func(error)
}

// Options configure a Limiter.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnError hears about counter and secret failures. The limiter fails
	// open: a request it cannot count is allowed.
	OnError func(error)
}

// New returns a Limiter counting in counter, identifiers keyed by secrets.
func New(counter Counter, secrets Secrets, opts Options) *Limiter {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	return &Limiter{counter: counter, secrets: secrets, now: opts.Now, onError: opts.OnError}
}

// identify is the counter key of a client identifier under rule: the rule
// name, the day, and the HMAC of the identifier under the day's key.
func (l *Limiter) identify(ctx context.Context, rule, id string, now time.Time) (string, error) {
	day := now.UTC().Format("2006-01-02")
	key, err := l.secrets.DailyKey(ctx, day)
	if err != nil {
		return "", fmt.Errorf("rate limit key of %s: %w", day, err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(rule))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return rule + ":" + day + ":" + hex.EncodeToString(m.Sum(nil)[:16]), nil
}

// Check counts the request against every rule that applies and returns the
// most constraining result: a denial if any rule denies, else the rule with
// the fewest requests left.
func (l *Limiter) Check(c echo.Context, rules []Rule) Result {
	ctx := c.Request().Context()
	now := l.now()
	var out Result
	out.Allowed = true
	for _, r := range rules {
		if !r.Enabled() {
			continue
		}
		id, ok := r.Key(c)
		if !ok {
			continue
		}
		key, err := l.identify(ctx, r.Name, id, now)
		if err != nil {
			l.onError(err)
			continue
		}
		start := now.Truncate(r.Window)
		n, err := l.counter.Hit(ctx, key, start, r.Window, now)
		if err != nil {
			l.onError(fmt.Errorf("rate limit %s: %w", r.Name, err))
			continue
		}
		res := Result{Rule: r.Name, Allowed: n <= int64(r.Limit), Limit: r.Limit, Remaining: max(0, r.Limit-int(n)), Reset: start.Add(r.Window).Sub(now)}
		switch {
		case out.Rule == "":
			out = res
		case !res.Allowed && (out.Allowed || res.Reset > out.Reset):
			out = res
		case res.Allowed && out.Allowed && res.Remaining < out.Remaining:
			out = res
		}
	}
	return out
}

// Headers sets the X-RateLimit-* headers of r on h, and Retry-After when r
// is a denial.
func Headers(h http.Header, r Result) {
	if r.Rule == "" {
		return
	}
	secs := strconv.Itoa(ceilSeconds(r.Reset))
	h.Set("X-RateLimit-Limit", strconv.Itoa(r.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(r.Remaining))
	h.Set("X-RateLimit-Reset", secs)
	if !r.Allowed {
		h.Set("Retry-After", secs)
	}
}

func ceilSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// Middleware bounds requests by the rules that rules returns for them (by
// route, c.Path(); none for routes it does not bound). A request over a
// bound is answered by deny — which should write 429 in the API's own
// error format; the headers are already set — and does not reach the
// route. Add it with echo.Echo.Use, so that the route is known.
func Middleware(l *Limiter, deny func(echo.Context, Result) error, rules func(echo.Context) []Rule) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			rs := rules(c)
			if len(rs) == 0 {
				return next(c)
			}
			res := l.Check(c, rs)
			Headers(c.Response().Header(), res)
			if !res.Allowed {
				return deny(c, res)
			}
			return next(c)
		}
	}
}

// HeaderKey identifies clients by a request header (an API key); requests
// without it are not counted by the rule (they fail authentication).
func HeaderKey(name string) func(echo.Context) (string, bool) {
	return func(c echo.Context) (string, bool) {
		v := c.Request().Header.Get(name)
		return v, v != ""
	}
}

// AddressKey identifies clients by their address as echo determines it
// (see echo.Echo.IPExtractor: set it to trust only the own proxies). An
// IPv6 client is its /64: one subscriber usually holds a whole /64, and
// counting single addresses would give it 2^64 budgets.
func AddressKey(c echo.Context) (string, bool) {
	a := c.RealIP()
	if ip := net.ParseIP(a); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64", true
	}
	return a, a != ""
}

// ClientKey is the key under which a bound named name counts the request's
// client: the HMAC of its address (AddressKey) under the day's key, as
// Check counts it. Bounds kept outside the Limiter (the verification
// service's failed-redemption budget) use it, so they too hold no address.
func (l *Limiter) ClientKey(c echo.Context, name string) (string, error) {
	a, ok := AddressKey(c)
	if !ok {
		return "", errors.New("rate limit: request without a client address")
	}
	return l.identify(c.Request().Context(), name, a, l.now())
}
