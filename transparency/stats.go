package transparency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/candor-en/candor/api/logentry"
)

// StatsSource gives the aggregate counts of finished UTC days per realm.
type StatsSource interface {
	// DailyStats returns one entry body per realm with counts for the UTC
	// day starting at day (its midnight); realms without counts that day
	// may be left out.
	DailyStats(ctx context.Context, day time.Time) ([]logentry.StatsDaily, error)
}

// StatsSettle is how long after the end of a UTC day its statistics are
// logged, so that counts buffered in memory have been written.
const StatsSettle = time.Hour

// DefaultStatsLookback is how many finished days RecordDailyStats logs when
// they are missing (after an outage, say).
const DefaultStatsLookback = 7

// RecordDailyStats logs the stats.daily entries of the finished UTC days of
// the last lookback days (DefaultStatsLookback when zero) that are not
// logged yet, oldest first, and returns how many it logged. A day is
// finished StatsSettle after its end.
func (l *Log) RecordDailyStats(ctx context.Context, src StatsSource, now time.Time, lookback int) (int, error) {
	if lookback <= 0 {
		lookback = DefaultStatsLookback
	}
	last := now.UTC().Add(-StatsSettle).Truncate(24*time.Hour).AddDate(0, 0, -1)
	logged := 0
	var errs []error
	for i := lookback - 1; i >= 0; i-- {
		day := last.AddDate(0, 0, -i)
		stats, err := src.DailyStats(ctx, day)
		if err != nil {
			errs = append(errs, fmt.Errorf("daily stats of %s: %w", day.Format(logentry.DayLayout), err))
			continue
		}
		for _, s := range stats {
			s.Day = day.Format(logentry.DayLayout)
			e := logentry.New(now, s)
			if _, ok := l.Lookup(e); ok {
				continue
			}
			if _, err := l.Append(ctx, e); err != nil {
				errs = append(errs, err)
				continue
			}
			logged++
		}
	}
	return logged, errors.Join(errs...)
}
