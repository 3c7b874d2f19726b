package datause

import (
	"context"
	"time"

	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/transparency"
	"github.com/candor-en/candor/verification"
)

// RealmStats gives the realms and their daily counts;
// *verification.Service implements it.
type RealmStats interface {
	Realms(ctx context.Context) ([]*verification.Realm, error)
	Stats(ctx context.Context, realm string, from, to time.Time) ([]verification.DayStats, error)
}

// VerificationStats gives the verification service's daily counts per
// realm as stats.daily bodies. Uploads and keys published per realm are not
// counted by the key server, so they are left out.
type VerificationStats struct {
	Service RealmStats
}

var _ transparency.StatsSource = VerificationStats{}

// DailyStats implements transparency.StatsSource.
func (v VerificationStats) DailyStats(ctx context.Context, day time.Time) ([]logentry.StatsDaily, error) {
	realms, err := v.Service.Realms(ctx)
	if err != nil {
		return nil, err
	}
	var out []logentry.StatsDaily
	for _, r := range realms {
		days, err := v.Service.Stats(ctx, r.Name, day, day)
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			if d.Day != day.Format(logentry.DayLayout) {
				continue
			}
			out = append(out, logentry.StatsDaily{
				Realm: r.Name, Day: d.Day,
				CodesIssued:        logentry.NewCount(d.CodesIssued),
				CodesClaimed:       logentry.NewCount(d.CodesClaimed),
				CertificatesIssued: logentry.NewCount(d.CertificatesIssued),
			})
		}
	}
	return out, nil
}

// RecordDailyStats logs the stats.daily entries of src's finished days
// that are not logged yet (transparency.Log.RecordDailyStats).
func (r *Recorder) RecordDailyStats(ctx context.Context, src transparency.StatsSource) error {
	_, err := r.log.RecordDailyStats(ctx, src, r.now(), 0)
	return err
}
