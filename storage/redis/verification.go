package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/candor-en/candor/verification"
)

// Verification key names. Realms, API keys and sealed secrets share the tag
// {ver}; everything of one realm's codes, tokens and statistics shares the
// tag {vr:<realm>}, so that issuing, claiming and expiring a code — which
// touch its record, the hash index, the expiry indexes and the day's
// counts — are single Lua scripts on one slot, on a cluster too.
//
//	<prefix>:{ver}:realms              hash: name → Realm JSON
//	<prefix>:{ver}:apikeys             hash: hex key hash → APIKey JSON
//	<prefix>:{ver}:secrets             hash: name → sealed blob
//	<prefix>:{ver}:vrealms             set: realms that have codes, tokens or counts
//	<prefix>:{vr:R}:code:<uuid>        hash: the code record (see codeRecord)
//	<prefix>:{vr:R}:hashes             hash: hex code hash → "<kind>:<uuid>"
//	<prefix>:{vr:R}:hashexp            sorted set: "<kind>:<uuid>:<hex hash>" by expiry (µs)
//	<prefix>:{vr:R}:codeexp            sorted set: uuid by long expiry (µs)
//	<prefix>:{vr:R}:tokens             sorted set: used token jti by expiry rounded up to the hour (µs)
//	<prefix>:{vr:R}:stats:<YYYY-MM-DD> hash: counter → count
//	<prefix>:{vr:R}:statdays           sorted set: days with counts, by day number
//
// A code record is a hash, not one JSON document, so that the scripts can
// read and change its mutable parts: j (the Code as issued, JSON), exp and
// lexp (expiry times), clm (claim time, when claimed), sh and lh (hex
// hashes still indexed, empty once removed). Once the code can no longer be
// redeemed (claimed, or its last hash removed after expiry), j, exp, lexp
// and clm hold its Spent form, to the hour, and so do its codeexp score and
// its Redis expiry time. Times the scripts compare are
// 20-digit zero-padded Unix nanoseconds, whose string order is their time
// order. Sorted-set scores are Unix microseconds (exact in a float64); the
// scripts recheck the exact times.
//
// Redis TTLs back up the cleanup: a code record expires recordGrace after
// its long code, a realm's used-token set tokenGrace after its last token
// (rounded up to the hour), even if RemoveExpiredCodes and
// RemoveExpiredTokens never run.

const (
	recordGrace = 7 * 24 * time.Hour
	tokenGrace  = 24 * time.Hour
	// cleanupChunk bounds the entries one cleanup round trip handles.
	cleanupChunk = 1000
)

var _ verification.Store = (*VerificationStore)(nil)

// VerificationStore implements verification.Store on Redis.
type VerificationStore struct {
	s *Store

	mu    sync.Mutex
	known map[string]bool // realms already in the vrealms set
}

// NewVerificationStore returns the verification store on s.
func NewVerificationStore(s *Store) *VerificationStore {
	return &VerificationStore{s: s, known: map[string]bool{}}
}

func (v *VerificationStore) verKey(name string) string { return v.s.prefix + ":{ver}:" + name }
func (v *VerificationStore) realmKey(realm, name string) string {
	return v.s.prefix + ":{vr:" + realm + "}:" + name
}
func (v *VerificationStore) codeKey(realm, uuid string) string {
	return v.realmKey(realm, "code:"+uuid)
}
func (v *VerificationStore) statsKey(realm string, day time.Time) string {
	return v.realmKey(realm, "stats:"+verification.UTCDay(day))
}

// dayNumber is the number of days from 1970-01-01 to t's UTC day.
func dayNumber(t time.Time) int64 {
	u := t.UTC().Unix()
	if u < 0 {
		return (u - 86399) / 86400
	}
	return u / 86400
}

// nsString is t as 20-digit zero-padded Unix nanoseconds (0 before 1970).
func nsString(t time.Time) string {
	n := t.UnixNano()
	if n < 0 || t.Before(time.Unix(0, 0)) {
		n = 0
	}
	return fmt.Sprintf("%020d", n)
}

func parseNS(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return time.Unix(0, n).UTC(), nil
}

// usScore is t in Unix microseconds, rounded down.
func usScore(t time.Time) float64 { return float64(t.UnixMicro()) }

// usBefore is the exclusive sorted-set bound "(n" that admits every score
// of a time before t: t in microseconds, rounded up.
func usBefore(t time.Time) string {
	us := t.UnixMicro()
	if t.Sub(time.UnixMicro(us)) > 0 {
		us++
	}
	return "(" + strconv.FormatInt(us, 10)
}

// beforeEpoch reports whether nothing can be stored before t.
func beforeEpoch(t time.Time) bool { return !t.After(time.Unix(0, 0)) }

// register adds realm to the set of realms that cleanup visits. It runs
// before the realm's first write, outside that write's script (another
// slot); an extra member for a write that then fails is harmless.
func (v *VerificationStore) register(ctx context.Context, realm string) error {
	v.mu.Lock()
	ok := v.known[realm]
	v.mu.Unlock()
	if ok {
		return nil
	}
	if err := v.s.rdb.SAdd(ctx, v.verKey("vrealms"), realm).Err(); err != nil {
		return fmt.Errorf("register realm %q: %w", realm, err)
	}
	v.mu.Lock()
	v.known[realm] = true
	v.mu.Unlock()
	return nil
}
