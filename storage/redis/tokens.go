package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/verification"
)

// claimTokenScript records a used token and counts a certificate.
// KEYS: tokens, stats, statdays. ARGV: jti, expiry score, day, day number,
// seconds the set must live.
var claimTokenScript = goredis.NewScript(scriptScore + scriptCoarse + `
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 0 then return 0 end
if expireAt(KEYS[1], tonumber(ARGV[5]), 'GT') == 0 and redis.call('PTTL', KEYS[1]) < 0 then
  expireAt(KEYS[1], tonumber(ARGV[5]), '')
end
redis.call('HINCRBY', KEYS[2], 'certificatesIssued', 1)
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return 1
`)

// ClaimToken implements verification.TokenStore: ZADD NX in a script, so
// of concurrent claims on any replicas exactly one adds the token.
func (v *VerificationStore) ClaimToken(ctx context.Context, realm, jti string, expires, now time.Time) error {
	if err := v.register(ctx, realm); err != nil {
		return fmt.Errorf("claim token: %w", err)
	}
	// The hour, not the exact expiry: that is the claim time plus the
	// token lifetime.
	expires = verification.CoarseTimeAfter(expires)
	ttl := max(expires.Sub(now), 0) + tokenGrace
	keys := []string{v.realmKey(realm, "tokens"), v.statsKey(realm, now), v.realmKey(realm, "statdays")}
	n, err := claimTokenScript.Run(ctx, v.s.rdb, keys, jti, usScore(expires), verification.UTCDay(now), dayNumber(now), int64(ttl/time.Second)).Int()
	if err == nil && n == 0 {
		err = verification.ErrUsed
	}
	if err == nil {
		err = v.s.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("claim token: %w", err)
	}
	return nil
}

// RemoveExpiredTokens implements verification.TokenStore.
func (v *VerificationStore) RemoveExpiredTokens(ctx context.Context, before time.Time) (int, error) {
	if beforeEpoch(before) {
		return 0, nil
	}
	realms, err := v.realmsWithData(ctx)
	if err != nil {
		return 0, fmt.Errorf("cleanup tokens: %w", err)
	}
	total := 0
	for _, realm := range realms {
		n, err := v.s.rdb.ZRemRangeByScore(ctx, v.realmKey(realm, "tokens"), "-inf", usBefore(before)).Result()
		total += int(n)
		if err != nil {
			return total, fmt.Errorf("cleanup tokens of %s: %w", realm, err)
		}
	}
	return total, nil
}
