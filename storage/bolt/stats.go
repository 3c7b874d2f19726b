package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/verification"
)

func statsKey(realm string, day time.Time) []byte {
	return realmKey(realm, []byte(verification.UTCDay(day)))
}

func getStats(tx *bbolt.Tx, realm string, day time.Time) (verification.Stats, error) {
	var st verification.Stats
	if v := tx.Bucket(bucketVerStats).Get(statsKey(realm, day)); v != nil {
		if err := json.Unmarshal(v, &st); err != nil {
			return st, fmt.Errorf("stats of %s: %w", realm, err)
		}
	}
	return st, nil
}

func putStats(tx *bbolt.Tx, realm string, day time.Time, st verification.Stats) error {
	return putJSON(tx.Bucket(bucketVerStats), statsKey(realm, day), st)
}

func addStats(tx *bbolt.Tx, realm string, day time.Time, delta verification.Stats) error {
	st, err := getStats(tx, realm, day)
	if err != nil {
		return err
	}
	st.Add(delta)
	return putStats(tx, realm, day, st)
}

// AddStats implements verification.StatsStore.
func (s *VerificationStore) AddStats(ctx context.Context, realm string, day time.Time, delta verification.Stats) error {
	err := s.w.update(func(tx *bbolt.Tx) error { return addStats(tx, realm, day, delta) })
	if err != nil {
		return fmt.Errorf("add stats of %s: %w", realm, err)
	}
	return nil
}

// Stats implements verification.StatsStore.
func (s *VerificationStore) Stats(ctx context.Context, realm string, from, to time.Time) ([]verification.DayStats, error) {
	var out []verification.DayStats
	end := statsKey(realm, to)
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketVerStats).Cursor()
		for k, v := c.Seek(statsKey(realm, from)); k != nil && bytes.Compare(k, end) <= 0; k, v = c.Next() {
			r, day, ok := splitRealmKey(k)
			if !ok || r != realm {
				break
			}
			ds := verification.DayStats{Realm: realm, Day: string(day)}
			if err := json.Unmarshal(v, &ds.Stats); err != nil {
				return err
			}
			out = append(out, ds)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", realm, err)
	}
	return out, nil
}
