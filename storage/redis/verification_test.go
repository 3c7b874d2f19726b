package redis_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/storage/redis/redistest"
	"github.com/candor-en/candor/verification"
)

// What a copy of Redis holds of a spent code and a used token, read raw as an
// insider would: no time finer than the hour in the record's fields, its
// codeexp score, its Redis expiry time, the used-token scores or the token
// set's expiry time; no dates or issuer in the record.
func TestSpentRecordsRaw(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	v := redis.NewVerificationStore(redis.New(rdb, redis.WithPrefix("raw")))

	now := time.Now().UTC()
	odd := now.Truncate(time.Hour).Add(17*time.Minute + 3500*time.Millisecond)
	if odd.After(now) {
		odd = odd.Add(-time.Hour)
	}
	c := &verification.Code{
		Realm: "wa", UUID: "u1", ShortHash: sha256.Sum256([]byte("s")), LongHash: sha256.Sum256([]byte("l")),
		TestType: "confirmed", SymptomDate: "2026-11-18", TestDate: "2026-11-19", IssuedBy: "admin-1",
		IssuedAt: odd, ExpiresAt: odd.Add(15 * time.Minute), LongExpiresAt: odd.Add(24 * time.Hour),
	}
	if err := v.IssueCode(ctx, c, 0); err != nil {
		t.Fatal(err)
	}
	claimedAt := odd.Add(7*time.Minute + 123456789)
	if _, err := v.ClaimCode(ctx, "wa", c.ShortHash, claimedAt); err != nil {
		t.Fatal(err)
	}
	if err := v.ClaimToken(ctx, "wa", "jti-1", claimedAt.Add(24*time.Hour), claimedAt); err != nil {
		t.Fatal(err)
	}

	hourNS := int64(time.Hour)
	fields, err := rdb.HGetAll(ctx, "raw:{vr:wa}:code:u1").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"exp", "lexp", "clm"} {
		n, err := strconv.ParseInt(fields[f], 10, 64)
		if err != nil || n%hourNS != 0 {
			t.Errorf("field %s = %q: finer than the hour", f, fields[f])
		}
	}
	for _, s := range []string{"2026-11-18", "2026-11-19", "admin-1", ".5"} {
		if strings.Contains(fields["j"], s) {
			t.Errorf("the spent record keeps %q: %s", s, fields["j"])
		}
	}
	for _, key := range []string{"raw:{vr:wa}:codeexp", "raw:{vr:wa}:tokens"} {
		zs, err := rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
		if err != nil || len(zs) != 1 {
			t.Fatalf("%s: %v %v", key, zs, err)
		}
		if us := int64(zs[0].Score); us%int64(time.Hour/time.Microsecond) != 0 {
			t.Errorf("%s: score %d µs is finer than the hour", key, us)
		}
	}
	for _, key := range []string{"raw:{vr:wa}:code:u1", "raw:{vr:wa}:tokens"} {
		at, err := rdb.PExpireTime(ctx, key).Result()
		if err != nil || at <= 0 || at.Milliseconds()%time.Hour.Milliseconds() != 0 {
			t.Errorf("%s expires at %v (%v): finer than the hour", key, at, err)
		}
	}
}
