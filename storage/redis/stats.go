package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/verification"
)

var statFields = []string{"codesIssued", "codesClaimed", "codesExpired", "invalidAttempts", "certificatesIssued"}

func statValues(st *verification.Stats) []*int64 {
	return []*int64{&st.CodesIssued, &st.CodesClaimed, &st.CodesExpired, &st.InvalidAttempts, &st.CertificatesIssued}
}

// AddStats implements verification.StatsStore with HINCRBY, atomic without
// reading.
func (v *VerificationStore) AddStats(ctx context.Context, realm string, day time.Time, delta verification.Stats) error {
	if err := v.register(ctx, realm); err != nil {
		return fmt.Errorf("add stats of %s: %w", realm, err)
	}
	key := v.statsKey(realm, day)
	_, err := v.s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i, n := range statValues(&delta) {
			if *n != 0 {
				p.HIncrBy(ctx, key, statFields[i], *n)
			}
		}
		p.ZAdd(ctx, v.realmKey(realm, "statdays"), goredis.Z{Score: float64(dayNumber(day)), Member: verification.UTCDay(day)})
		return nil
	})
	if err == nil {
		err = v.s.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("add stats of %s: %w", realm, err)
	}
	return nil
}

// Stats implements verification.StatsStore.
func (v *VerificationStore) Stats(ctx context.Context, realm string, from, to time.Time) ([]verification.DayStats, error) {
	days, err := v.s.rdb.ZRangeByScore(ctx, v.realmKey(realm, "statdays"), &goredis.ZRangeBy{
		Min: strconv.FormatInt(dayNumber(from), 10), Max: strconv.FormatInt(dayNumber(to), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", realm, err)
	}
	cmds := make([]*goredis.MapStringStringCmd, len(days))
	if len(days) > 0 {
		if _, err := v.s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, d := range days {
				cmds[i] = p.HGetAll(ctx, v.realmKey(realm, "stats:"+d))
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("stats of %s: %w", realm, err)
		}
	}
	var out []verification.DayStats
	for i, d := range days {
		f := cmds[i].Val()
		if len(f) == 0 {
			continue
		}
		ds := verification.DayStats{Realm: realm, Day: d}
		for j, p := range statValues(&ds.Stats) {
			if s, ok := f[statFields[j]]; ok {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("stats of %s on %s: %w", realm, d, err)
				}
				*p = n
			}
		}
		out = append(out, ds)
	}
	return out, nil
}
