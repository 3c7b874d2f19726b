package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/verification"
)

var vbase = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func hashOf(s string) verification.Hash { return sha256.Sum256([]byte(s)) }

func newCode(realm, uuid string) *verification.Code {
	return &verification.Code{
		Realm: realm, UUID: uuid, ShortHash: hashOf(realm + uuid + "s"), LongHash: hashOf(realm + uuid + "l"),
		TestType: "confirmed", SymptomDate: "2026-11-18", IssuedAt: vbase,
		ExpiresAt: vbase.Add(15 * time.Minute), LongExpiresAt: vbase.Add(24 * time.Hour),
	}
}

func sumStats(t *testing.T, s verification.Store, realm string) verification.Stats {
	t.Helper()
	days, err := s.Stats(context.Background(), realm, vbase.AddDate(0, 0, -10), vbase.AddDate(0, 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	var total verification.Stats
	for _, d := range days {
		total.Add(d.Stats)
	}
	return total
}

// TestVerificationStore runs the verification-store conformance tests
// (verification.Store's contract); open returns a fresh, empty store.
func TestVerificationStore(t *testing.T, open func(*testing.T) verification.Store) {
	t.Run("realms", func(t *testing.T) { testVerRealms(t, open) })
	t.Run("api keys", func(t *testing.T) { testVerAPIKeys(t, open) })
	t.Run("issue refusals write nothing", func(t *testing.T) { testVerIssueRefusalsWriteNothing(t, open) })
	t.Run("find and claim", func(t *testing.T) { testVerFindAndClaim(t, open) })
	t.Run("concurrent claims: exactly one wins", func(t *testing.T) { testVerConcurrentClaimsExactlyOneWins(t, open) })
	t.Run("expire", func(t *testing.T) { testVerExpire(t, open) })
	t.Run("remove expired codes", func(t *testing.T) { testVerRemoveExpiredCodes(t, open) })
	t.Run("tokens", func(t *testing.T) { testVerTokens(t, open) })
	t.Run("stats", func(t *testing.T) { testVerStats(t, open) })
	t.Run("sealed secret", func(t *testing.T) { testVerSealedSecret(t, open) })
	t.Run("spent codes and used tokens keep only hours", func(t *testing.T) { testVerSpentCodesAndUsedTokensKeepOnlyHours(t, open) })
	t.Run("a code reads back as issued", func(t *testing.T) { testVerACodeReadsBackAsIssued(t, open) })
	t.Run("concurrent issues stay within the quota", func(t *testing.T) { testVerConcurrentIssuesStayWithinTheQuota(t, open) })
	t.Run("concurrent expire and claim: one wins", func(t *testing.T) { testVerConcurrentExpireAndClaimOneWins(t, open) })
}

func testVerRealms(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	r := verification.Realm{Name: "wa", Region: "US-WA"}.WithDefaults()
	if err := s.CreateRealm(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRealm(ctx, &r); !errors.Is(err, verification.ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := s.Realm(ctx, "nope"); !errors.Is(err, verification.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateRealm(ctx, "wa", func(r *verification.Realm) error { r.DailyQuota = 5; return boom }); !errors.Is(err, boom) {
		t.Errorf("update error: %v", err)
	}
	got, _ := s.Realm(ctx, "wa")
	if got.DailyQuota != 0 {
		t.Error("a failed update wrote")
	}
	if _, err := s.UpdateRealm(ctx, "wa", func(r *verification.Realm) error { r.DailyQuota = 5; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRealm(ctx, "nope", func(*verification.Realm) error { return nil }); !errors.Is(err, verification.ErrNotFound) {
		t.Errorf("update unknown: %v", err)
	}
	all, err := s.Realms(ctx)
	if err != nil || len(all) != 1 || all[0].DailyQuota != 5 || all[0].TokenIssuer != "candor/wa/token" {
		t.Errorf("realms %+v %v", all, err)
	}
}

func testVerAPIKeys(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	k := &verification.APIKey{ID: "k1", Realm: "wa", Kind: verification.AdminKey, Hash: hashOf("secret"), CreatedAt: vbase}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(ctx, k); !errors.Is(err, verification.ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	s.CreateAPIKey(ctx, &verification.APIKey{ID: "k2", Realm: "or", Kind: verification.DeviceKey, Hash: hashOf("other")})
	got, err := s.APIKey(ctx, hashOf("secret"))
	if err != nil || got.ID != "k1" || got.Kind != verification.AdminKey {
		t.Fatalf("lookup %+v %v", got, err)
	}
	if _, err := s.APIKey(ctx, hashOf("nope")); !errors.Is(err, verification.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := s.RevokeAPIKey(ctx, "or", "k1", vbase); !errors.Is(err, verification.ErrNotFound) {
		t.Errorf("revoking through another realm: %v", err)
	}
	rk, err := s.RevokeAPIKey(ctx, "wa", "k1", vbase.Add(time.Hour))
	if err != nil || !rk.RevokedAt.Equal(vbase.Add(time.Hour)) {
		t.Fatalf("revoke %+v %v", rk, err)
	}
	if rk, _ := s.RevokeAPIKey(ctx, "wa", "k1", vbase.Add(2*time.Hour)); !rk.RevokedAt.Equal(vbase.Add(time.Hour)) {
		t.Error("a second revocation moved the time")
	}
	if got, _ := s.APIKey(ctx, hashOf("secret")); !got.Revoked() {
		t.Error("not revoked")
	}
	if keys, _ := s.APIKeys(ctx, "wa"); len(keys) != 1 {
		t.Errorf("keys of wa: %d", len(keys))
	}
}

func testVerIssueRefusalsWriteNothing(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	c := newCode("wa", "u1")
	if err := s.IssueCode(ctx, c, 2); err != nil {
		t.Fatal(err)
	}
	dup := newCode("wa", "u1")
	dup.ShortHash, dup.LongHash = hashOf("x"), hashOf("y")
	if err := s.IssueCode(ctx, dup, 0); !errors.Is(err, verification.ErrExists) {
		t.Errorf("same uuid: %v", err)
	}
	coll := newCode("wa", "u2")
	coll.LongHash = c.ShortHash
	if err := s.IssueCode(ctx, coll, 0); !errors.Is(err, verification.ErrCollision) {
		t.Errorf("hash collision: %v", err)
	}
	if _, _, err := s.FindCode(ctx, "wa", hashOf("x")); !errors.Is(err, verification.ErrNotFound) {
		t.Error("a refused code was indexed")
	}
	// The same hash in another realm is no collision.
	other := newCode("or", "u2")
	other.ShortHash = c.ShortHash
	if err := s.IssueCode(ctx, other, 0); err != nil {
		t.Errorf("other realm: %v", err)
	}
	if err := s.IssueCode(ctx, newCode("wa", "u3"), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.IssueCode(ctx, newCode("wa", "u4"), 2); !errors.Is(err, verification.ErrQuotaExceeded) {
		t.Errorf("quota: %v", err)
	}
	if _, err := s.CodeByUUID(ctx, "wa", "u4"); !errors.Is(err, verification.ErrNotFound) {
		t.Error("a code over quota was stored")
	}
	next := newCode("wa", "u5")
	next.IssuedAt = vbase.AddDate(0, 0, 1)
	if err := s.IssueCode(ctx, next, 2); err != nil {
		t.Errorf("next UTC day: %v", err)
	}
	if st := sumStats(t, s, "wa"); st.CodesIssued != 3 {
		t.Errorf("issued %d", st.CodesIssued)
	}
}

func testVerFindAndClaim(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	c := newCode("wa", "u1")
	s.IssueCode(ctx, c, 0)
	got, kind, err := s.FindCode(ctx, "wa", c.LongHash)
	if err != nil || kind != verification.LongCode || got.UUID != "u1" || got.TestType != "confirmed" {
		t.Fatalf("find long: %+v %v %v", got, kind, err)
	}
	if _, _, err := s.FindCode(ctx, "or", c.ShortHash); !errors.Is(err, verification.ErrNotFound) {
		t.Error("found through another realm")
	}
	// The short code expired, the long code has not.
	now := vbase.Add(20 * time.Minute)
	if _, err := s.ClaimCode(ctx, "wa", c.ShortHash, now); !errors.Is(err, verification.ErrExpired) {
		t.Errorf("expired short: %v", err)
	}
	claimed, err := s.ClaimCode(ctx, "wa", c.LongHash, now)
	if err != nil || !claimed.Claimed || !claimed.ClaimedAt.Equal(now) || claimed.Hashed() {
		t.Fatalf("claim: %+v %v", claimed, err)
	}
	for _, h := range []verification.Hash{c.ShortHash, c.LongHash} {
		if _, err := s.ClaimCode(ctx, "wa", h, now); !errors.Is(err, verification.ErrNotFound) {
			t.Errorf("second claim: %v", err)
		}
		if _, _, err := s.FindCode(ctx, "wa", h); !errors.Is(err, verification.ErrNotFound) {
			t.Error("a claimed code's hash is still indexed")
		}
	}
	rec, _ := s.CodeByUUID(ctx, "wa", "u1")
	if !rec.Claimed || rec.Hashed() {
		t.Errorf("record %+v", rec)
	}
	if st := sumStats(t, s, "wa"); st.CodesClaimed != 1 {
		t.Errorf("claimed %d", st.CodesClaimed)
	}
}

func testVerConcurrentClaimsExactlyOneWins(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	for round := range 5 {
		c := newCode("wa", fmt.Sprint("u", round))
		s.IssueCode(ctx, c, 0)
		const n = 100
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := c.ShortHash
				if i%2 == 0 {
					h = c.LongHash
				}
				_, err := s.ClaimCode(ctx, "wa", h, vbase)
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, verification.ErrNotFound) {
					t.Errorf("claim: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("round %d: %d winners", round, wins)
		}
	}
	if st := sumStats(t, s, "wa"); st.CodesClaimed != 5 {
		t.Errorf("claimed %d, want 5", st.CodesClaimed)
	}
}

func testVerExpire(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	c := newCode("wa", "u1")
	s.IssueCode(ctx, c, 0)
	now := vbase.Add(time.Minute)
	got, err := s.ExpireCode(ctx, "wa", "u1", now)
	if err != nil || !got.ExpiresAt.Equal(now) || !got.LongExpiresAt.Equal(now) {
		t.Fatalf("expire: %+v %v", got, err)
	}
	if _, err := s.ClaimCode(ctx, "wa", c.LongHash, now); !errors.Is(err, verification.ErrExpired) {
		t.Errorf("claim after expire: %v", err)
	}
	if _, err := s.ExpireCode(ctx, "wa", "u1", now); !errors.Is(err, verification.ErrExpired) {
		t.Errorf("expire twice: %v", err)
	}
	s.IssueCode(ctx, newCode("wa", "u2"), 0)
	s.ClaimCode(ctx, "wa", newCode("wa", "u2").ShortHash, vbase)
	if _, err := s.ExpireCode(ctx, "wa", "u2", now); !errors.Is(err, verification.ErrClaimed) {
		t.Errorf("expire claimed: %v", err)
	}
	if _, err := s.ExpireCode(ctx, "wa", "nope", now); !errors.Is(err, verification.ErrNotFound) {
		t.Errorf("expire unknown: %v", err)
	}
	// An expired code's hashes go at the new expiry, not the old one.
	h, r, err := s.RemoveExpiredCodes(ctx, now.Add(time.Second), time.Time{})
	if err != nil || h != 2 || r != 0 {
		t.Errorf("cleanup after expire: %d %d %v", h, r, err)
	}
}

func testVerRemoveExpiredCodes(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	unclaimed, claimed := newCode("wa", "u1"), newCode("wa", "u2")
	s.IssueCode(ctx, unclaimed, 0)
	s.IssueCode(ctx, claimed, 0)
	s.ClaimCode(ctx, "wa", claimed.ShortHash, vbase)

	h, r, err := s.RemoveExpiredCodes(ctx, vbase.Add(time.Hour), vbase)
	if err != nil || h != 1 || r != 0 { // only the unclaimed short hash
		t.Fatalf("first pass: %d %d %v", h, r, err)
	}
	if _, _, err := s.FindCode(ctx, "wa", unclaimed.ShortHash); !errors.Is(err, verification.ErrNotFound) {
		t.Error("expired short hash still indexed")
	}
	if _, _, err := s.FindCode(ctx, "wa", unclaimed.LongHash); err != nil {
		t.Error("the long hash went early")
	}
	if st := sumStats(t, s, "wa"); st.CodesExpired != 0 {
		t.Error("counted expired while the long code lives")
	}
	h, r, err = s.RemoveExpiredCodes(ctx, vbase.Add(25*time.Hour), vbase)
	if err != nil || h != 1 || r != 0 {
		t.Fatalf("second pass: %d %d %v", h, r, err)
	}
	if rec, err := s.CodeByUUID(ctx, "wa", "u1"); err != nil || rec.Hashed() {
		t.Errorf("record after hash removal: %+v %v", rec, err)
	}
	if st := sumStats(t, s, "wa"); st.CodesExpired != 1 {
		t.Errorf("expired %d, want 1", st.CodesExpired)
	}
	h, r, err = s.RemoveExpiredCodes(ctx, vbase.Add(100*time.Hour), vbase.Add(25*time.Hour))
	if err != nil || h != 0 || r != 2 {
		t.Fatalf("third pass: %d %d %v", h, r, err)
	}
	for _, u := range []string{"u1", "u2"} {
		if _, err := s.CodeByUUID(ctx, "wa", u); !errors.Is(err, verification.ErrNotFound) {
			t.Errorf("record %s kept", u)
		}
	}
	// The UUID is free again.
	if err := s.IssueCode(ctx, newCode("wa", "u1"), 0); err != nil {
		t.Errorf("reissue: %v", err)
	}
}

func testVerTokens(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	exp := vbase.Add(24 * time.Hour)
	const n = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.ClaimToken(ctx, "wa", "jti-1", exp, vbase)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if !errors.Is(err, verification.ErrUsed) {
				t.Errorf("claim token: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d winners", wins)
	}
	if err := s.ClaimToken(ctx, "or", "jti-1", exp, vbase); err != nil {
		t.Errorf("same jti, other realm: %v", err)
	}
	if n, err := s.RemoveExpiredTokens(ctx, exp); err != nil || n != 0 {
		t.Errorf("removed %d at expiry: %v", n, err)
	}
	if err := s.ClaimToken(ctx, "wa", "jti-1", exp, vbase); !errors.Is(err, verification.ErrUsed) {
		t.Errorf("still used until it expires: %v", err)
	}
	if n, err := s.RemoveExpiredTokens(ctx, exp.Add(time.Second)); err != nil || n != 2 {
		t.Errorf("removed %d after expiry: %v", n, err)
	}
	if st := sumStats(t, s, "wa"); st.CertificatesIssued != 1 {
		t.Errorf("certificates %d", st.CertificatesIssued)
	}
}

func testVerStats(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	for i := range 5 {
		s.AddStats(ctx, "wa", vbase.AddDate(0, 0, i), verification.Stats{InvalidAttempts: int64(i + 1)})
	}
	s.AddStats(ctx, "wa", vbase, verification.Stats{InvalidAttempts: 10})
	s.AddStats(ctx, "wb", vbase, verification.Stats{InvalidAttempts: 100})
	days, err := s.Stats(ctx, "wa", vbase.AddDate(0, 0, 1), vbase.AddDate(0, 0, 3))
	if err != nil || len(days) != 3 || days[0].Day != "2026-11-21" || days[0].InvalidAttempts != 2 || days[2].InvalidAttempts != 4 {
		t.Errorf("range: %+v %v", days, err)
	}
	days, _ = s.Stats(ctx, "wa", vbase, vbase)
	if len(days) != 1 || days[0].InvalidAttempts != 11 {
		t.Errorf("one day: %+v", days)
	}
}

func testVerSealedSecret(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	var wg sync.WaitGroup
	blobs := make([][]byte, 20)
	for i := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := s.SealedSecret(ctx, "hmac", func() ([]byte, error) { return []byte(fmt.Sprint("blob", i)), nil })
			if err != nil {
				t.Error(err)
			}
			blobs[i] = b
		}()
	}
	wg.Wait()
	for _, b := range blobs {
		if string(b) != string(blobs[0]) {
			t.Fatalf("callers got different secrets: %q %q", b, blobs[0])
		}
	}
	boom := errors.New("boom")
	if _, err := s.SealedSecret(ctx, "other", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("create error: %v", err)
	}
}

func testVerSpentCodesAndUsedTokensKeepOnlyHours(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	odd := vbase.Add(17*time.Minute + 3500*time.Millisecond)
	issue := func(uuid string) *verification.Code {
		c := newCode("wa", uuid)
		c.TestDate, c.IssuedBy = "2026-11-19", "admin-1"
		c.IssuedAt, c.ExpiresAt, c.LongExpiresAt = odd, odd.Add(15*time.Minute), odd.Add(24*time.Hour)
		if err := s.IssueCode(ctx, c, 0); err != nil {
			t.Fatal(err)
		}
		return c
	}
	spent := func(uuid string, claimed bool) {
		t.Helper()
		rec, err := s.CodeByUUID(ctx, "wa", uuid)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{rec.IssuedAt, rec.ExpiresAt, rec.LongExpiresAt, rec.ClaimedAt} {
			if !at.Equal(verification.CoarseTime(at)) {
				t.Errorf("%s: stored time %s is finer than %v", uuid, at, verification.StoredTimeUnit)
			}
		}
		if rec.SymptomDate != "" || rec.TestDate != "" || rec.IssuedBy != "" || rec.Hashed() ||
			rec.Claimed != claimed || rec.TestType != "confirmed" || !rec.LongExpiresAt.Equal(verification.CoarseTime(odd.Add(24*time.Hour))) {
			t.Errorf("%s: spent record %+v", uuid, rec)
		}
	}

	c := issue("u1")
	now := odd.Add(9*time.Minute + 12345*time.Microsecond)
	got, err := s.ClaimCode(ctx, "wa", c.ShortHash, now)
	// The caller still gets what it needs for the token.
	if err != nil || !got.ClaimedAt.Equal(now) || got.SymptomDate != c.SymptomDate || got.TestDate != c.TestDate || got.TestType != c.TestType {
		t.Fatalf("claim: %+v %v", got, err)
	}
	spent("u1", true)
	if rec, _ := s.CodeByUUID(ctx, "wa", "u1"); !rec.ClaimedAt.Equal(verification.CoarseTime(now)) {
		t.Errorf("claimed at %s, want %s", rec.ClaimedAt, verification.CoarseTime(now))
	}

	// An unclaimed code is spent when its last hash goes.
	issue("u2")
	if _, _, err := s.RemoveExpiredCodes(ctx, odd.Add(26*time.Hour), time.Time{}); err != nil {
		t.Fatal(err)
	}
	spent("u2", false)
	// Both are still removed after their retention, from the coarse
	// long expiry.
	if _, r, err := s.RemoveExpiredCodes(ctx, odd.Add(26*time.Hour), verification.CoarseTime(odd.Add(24*time.Hour)).Add(time.Second)); err != nil || r != 2 {
		t.Errorf("records removed: %d %v", r, err)
	}

	// A used token is remembered until the end of the hour of its expiry.
	exp := odd.Add(24 * time.Hour)
	if err := s.ClaimToken(ctx, "wa", "jti-odd", exp, odd); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RemoveExpiredTokens(ctx, exp.Add(time.Second)); err != nil || n != 0 {
		t.Errorf("removed %d within the hour of its expiry: %v", n, err)
	}
	if err := s.ClaimToken(ctx, "wa", "jti-odd", exp, odd); !errors.Is(err, verification.ErrUsed) {
		t.Errorf("claimed again: %v", err)
	}
	if n, err := s.RemoveExpiredTokens(ctx, verification.CoarseTimeAfter(exp).Add(time.Second)); err != nil || n != 1 {
		t.Errorf("removed %d after the hour: %v", n, err)
	}
}

func testVerACodeReadsBackAsIssued(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	c := newCode("wa", "u1")
	c.TestDate, c.IssuedBy = "2026-11-19", "admin-1"
	if err := s.IssueCode(ctx, c, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.CodeByUUID(ctx, "wa", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Realm != c.Realm || got.UUID != c.UUID || got.ShortHash != c.ShortHash || got.LongHash != c.LongHash ||
		got.TestType != c.TestType || got.SymptomDate != c.SymptomDate || got.TestDate != c.TestDate || got.IssuedBy != c.IssuedBy ||
		!got.IssuedAt.Equal(c.IssuedAt) || !got.ExpiresAt.Equal(c.ExpiresAt) || !got.LongExpiresAt.Equal(c.LongExpiresAt) ||
		got.Claimed || !got.ClaimedAt.IsZero() {
		t.Errorf("read back %+v\nissued %+v", got, c)
	}
	found, kind, err := s.FindCode(ctx, "wa", c.ShortHash)
	if err != nil || kind != verification.ShortCode || found.UUID != "u1" {
		t.Errorf("find short: %+v %v %v", found, kind, err)
	}
	if _, err := s.CodeByUUID(ctx, "or", "u1"); !errors.Is(err, verification.ErrNotFound) {
		t.Errorf("another realm's code: %v", err)
	}
}

func testVerConcurrentIssuesStayWithinTheQuota(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	const quota, n = 7, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	issued := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.IssueCode(ctx, newCode("wa", fmt.Sprint("q", i)), quota)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				issued++
			} else if !errors.Is(err, verification.ErrQuotaExceeded) {
				t.Errorf("issue: %v", err)
			}
		}()
	}
	wg.Wait()
	if issued != quota {
		t.Errorf("%d codes issued with a quota of %d", issued, quota)
	}
	if st := sumStats(t, s, "wa"); st.CodesIssued != quota {
		t.Errorf("counted %d issued", st.CodesIssued)
	}
}

func testVerConcurrentExpireAndClaimOneWins(t *testing.T, open func(*testing.T) verification.Store) {
	ctx := context.Background()
	s := open(t)
	for round := range 10 {
		c := newCode("wa", fmt.Sprint("r", round))
		if err := s.IssueCode(ctx, c, 0); err != nil {
			t.Fatal(err)
		}
		var claimErr, expireErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, claimErr = s.ClaimCode(ctx, "wa", c.LongHash, vbase) }()
		go func() { defer wg.Done(); _, expireErr = s.ExpireCode(ctx, "wa", c.UUID, vbase) }()
		wg.Wait()
		switch {
		case claimErr == nil && errors.Is(expireErr, verification.ErrClaimed):
		case expireErr == nil && errors.Is(claimErr, verification.ErrExpired):
		default:
			t.Fatalf("round %d: claim %v, expire %v", round, claimErr, expireErr)
		}
	}
}
