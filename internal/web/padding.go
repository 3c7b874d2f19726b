package web

import (
	crand "crypto/rand"
	"encoding/base64"
	"math/rand/v2"
	"sync"
	"time"
)

// Padding returns 1–2 KiB of random base64, added to responses so that
// their size does not reveal the outcome.
func Padding() string {
	n := 1024 + rand.IntN(1025)
	b := make([]byte, n) // its base64 is longer than n; cut to n
	crand.Read(b)        // never fails since Go 1.24
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// RandomBase64 returns the standard base64 of n random bytes.
func RandomBase64(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// LatencySampler remembers recent latencies of real requests so that decoy
// requests can wait a duration drawn from the same distribution.
type LatencySampler struct {
	mu   sync.Mutex
	ring [512]time.Duration
	n    int
}

// Observe records one real request's latency.
func (s *LatencySampler) Observe(d time.Duration) {
	s.mu.Lock()
	s.ring[s.n%len(s.ring)] = d
	s.n++
	s.mu.Unlock()
}

// Sample returns a recent real latency, or a small default before any.
func (s *LatencySampler) Sample() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return time.Duration(2+rand.IntN(8)) * time.Millisecond
	}
	return s.ring[rand.IntN(min(s.n, len(s.ring)))]
}
