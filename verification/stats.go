package verification

import (
	"sync"
	"time"
)

// Stats are one realm's counts for one UTC day: what the UI shows and the
// transparency log publishes (as aggregates, never per code).
type Stats struct {
	CodesIssued int64 `json:"codesIssued"`
	// CodesClaimed counts codes exchanged for a token.
	CodesClaimed int64 `json:"codesClaimed"`
	// CodesExpired counts codes that expired unclaimed (on their long
	// code's expiry day).
	CodesExpired int64 `json:"codesExpired"`
	// InvalidAttempts counts redemptions refused as code_invalid or
	// code_expired.
	InvalidAttempts    int64 `json:"invalidAttempts"`
	CertificatesIssued int64 `json:"certificatesIssued"`
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.CodesIssued += o.CodesIssued
	s.CodesClaimed += o.CodesClaimed
	s.CodesExpired += o.CodesExpired
	s.InvalidAttempts += o.InvalidAttempts
	s.CertificatesIssued += o.CertificatesIssued
}

// DayStats are the counts of one realm and UTC day.
type DayStats struct {
	Realm string `json:"realm"`
	// Day is the UTC date, YYYY-MM-DD.
	Day string `json:"day"`
	Stats
}

// UTCDay returns the UTC date of t as YYYY-MM-DD.
func UTCDay(t time.Time) string { return t.UTC().Format(DateLayout) }

// attemptCounter buffers invalid-attempt counts in memory, so that a flood
// of bad codes costs no store writes; Service.FlushStats writes them.
type attemptCounter struct {
	mu     sync.Mutex
	counts map[realmDay]int64
}

type realmDay struct {
	realm string
	day   time.Time // UTC midnight
}

func (c *attemptCounter) add(realm string, now time.Time) {
	y, m, d := now.UTC().Date()
	k := realmDay{realm, time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[realmDay]int64{}
	}
	c.counts[k]++
	c.mu.Unlock()
}

func (c *attemptCounter) take() map[realmDay]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = nil
	return out
}

func (c *attemptCounter) putBack(k realmDay, n int64) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[realmDay]int64{}
	}
	c.counts[k] += n
	c.mu.Unlock()
}
