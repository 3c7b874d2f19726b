package ratelimit

import (
	"context"
	"crypto/rand"
	"sync"
	"time"
)

// MemoryCounter is the Counter of a single process. It forgets windows that
// ended whenever it counts, so its memory stays bounded by the clients of
// the current windows.
type MemoryCounter struct {
	mu     sync.Mutex
	counts map[string]memoryCount
	sweep  time.Time
}

type memoryCount struct {
	n   int64
	end time.Time
}

// NewMemoryCounter returns an empty MemoryCounter.
func NewMemoryCounter() *MemoryCounter { return &MemoryCounter{counts: map[string]memoryCount{}} }

// Hit implements Counter.
func (m *MemoryCounter) Hit(_ context.Context, key string, start time.Time, d time.Duration, now time.Time) (int64, error) {
	end := start.Add(d)
	k := key + "@" + start.UTC().Format(time.RFC3339Nano)
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.sweep) >= time.Minute {
		for k, c := range m.counts {
			if !now.Before(c.end) {
				delete(m.counts, k)
			}
		}
		m.sweep = now
	}
	c := m.counts[k]
	c.n++
	c.end = end
	m.counts[k] = c
	return c.n, nil
}

// Len is the number of counts kept (tests).
func (m *MemoryCounter) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.counts)
}

// MemorySecrets are the daily keys of a single process: random, made on
// first use, and forgotten when their day is two days past.
type MemorySecrets struct {
	mu   sync.Mutex
	keys map[string][]byte
}

// NewMemorySecrets returns MemorySecrets without keys.
func NewMemorySecrets() *MemorySecrets { return &MemorySecrets{keys: map[string][]byte{}} }

// DailyKey implements Secrets.
func (s *MemorySecrets) DailyKey(_ context.Context, day string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[day]; ok {
		return k, nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	s.keys[day] = k
	// Days are YYYY-MM-DD, so string order is time order: keep the two
	// newest.
	for len(s.keys) > 2 {
		oldest := ""
		for d := range s.keys {
			if oldest == "" || d < oldest {
				oldest = d
			}
		}
		delete(s.keys, oldest)
	}
	return k, nil
}
