package bolt

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/candor-en/candor/keyserver"
)

// BenchmarkPublish measures concurrent publishes of 14 new keys each, the
// write path the group commit exists for: each iteration is one durable
// publish.
func BenchmarkPublish(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	created := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			es := make([]*keyserver.Exposure, 14)
			keys := make([][keyserver.KeyLength]byte, len(es))
			for i := range es {
				e := &keyserver.Exposure{IntervalNumber: 2_900_000, IntervalCount: 144, ReportType: keyserver.ReportLikely,
					Region: "US-WA", HealthAuthorityID: "app", CreatedAt: created}
				rand.Read(e.Key[:])
				es[i], keys[i] = e, e.Key
			}
			err := db.Publish(context.Background(), keys, func(map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error) {
				return &keyserver.Change{Insert: es}, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
