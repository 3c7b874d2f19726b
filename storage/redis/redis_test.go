package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/internal/outbox"
	"github.com/candor-en/candor/internal/outbox/queuetest"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/storage/redis/redistest"
	"github.com/candor-en/candor/storage/storetest"
	"github.com/candor-en/candor/verification"
)

func TestConformanceStandalone(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	var n atomic.Int64
	fresh := func() *redis.Store { return redis.New(rdb, redis.WithPrefix(fmt.Sprintf("t%d", n.Add(1)))) }
	storetest.TestExposures(t, func(t *testing.T) storetest.ExposureStore { return fresh() })
	storetest.TestAuthorities(t, func(t *testing.T) keyserver.AuthorityStore { return fresh() })
	storetest.TestVerificationStore(t, func(t *testing.T) verification.Store { return redis.NewVerificationStore(fresh()) })
	storetest.TestExportStore(t, func(t *testing.T) storetest.ExportStore { return fresh() })
	t.Run("outbox", func(t *testing.T) {
		queuetest.Run(t, func(t *testing.T) outbox.Queue { return redis.NewOutbox(fresh(), "data-use") })
	})
	t.Run("rate limits", func(t *testing.T) { testRateLimits(t, rdb, fmt.Sprintf("t%d", n.Add(1))) })
	t.Run("failure limiter", func(t *testing.T) { testFailureLimiter(t, rdb, fmt.Sprintf("t%d", n.Add(1))) })
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-master cluster")
	}
	rdb := redistest.StartCluster(t)
	var n atomic.Int64
	fresh := func() *redis.Store { return redis.New(rdb, redis.WithPrefix(fmt.Sprintf("c%d", n.Add(1)))) }
	storetest.TestExposures(t, func(t *testing.T) storetest.ExposureStore { return fresh() })
	storetest.TestAuthorities(t, func(t *testing.T) keyserver.AuthorityStore { return fresh() })
	storetest.TestVerificationStore(t, func(t *testing.T) verification.Store { return redis.NewVerificationStore(fresh()) })
	storetest.TestExportStore(t, func(t *testing.T) storetest.ExportStore { return fresh() })
	t.Run("outbox", func(t *testing.T) {
		queuetest.Run(t, func(t *testing.T) outbox.Queue { return redis.NewOutbox(fresh(), "data-use") })
	})
	t.Run("rate limits", func(t *testing.T) { testRateLimits(t, rdb, fmt.Sprintf("c%d", n.Add(1))) })
	t.Run("open by URL", func(t *testing.T) {
		addrs := rdb.(*goredis.ClusterClient).Options().Addrs
		s, err := redis.Open(context.Background(), "redis+cluster://"+strings.Join(addrs[:1], ","))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, ok := s.Client().(*goredis.ClusterClient); !ok {
			t.Fatalf("client %T, want a cluster client", s.Client())
		}
		ctx := context.Background()
		// Keys of every slot are reachable through one seed address.
		for i := range 50 {
			if err := s.SaveKeyset(ctx, fmt.Sprint("k", i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("failure limiter", func(t *testing.T) { testFailureLimiter(t, rdb, fmt.Sprintf("c%d", n.Add(1))) })
}

func TestOpenURL(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redis.Open(context.Background(), "redis://"+srv.Addr+"/0")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := redis.Open(context.Background(), "redis://127.0.0.1:1/0"); err == nil {
		t.Error("unreachable Redis opened")
	}
}

// With AOF and appendfsync always (deploy/redis/redis.conf), publishes
// acknowledged before redis-server is killed with SIGKILL are all there
// after it restarts.
func TestDurableAcrossSIGKILL(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	rdb := srv.Client(t)
	s := redis.New(rdb)
	ctx := context.Background()
	var keys [][16]byte
	for i := range 200 {
		k := [16]byte{byte(i), byte(i >> 8), 7}
		keys = append(keys, k)
		err := s.Publish(ctx, [][16]byte{k}, func(map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) {
			return &keyserver.Change{Insert: []*keyserver.Exposure{{Key: k, IntervalCount: 144, Region: "R"}}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	srv.Restart(t) // SIGKILL, then start on the same data dir
	s = redis.New(srv.Client(t))
	for i, k := range keys {
		if _, err := s.Exposure(ctx, k); err != nil {
			t.Fatalf("acknowledged key %d lost after SIGKILL: %v", i, err)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		addrs   int
		cluster bool
		master  string
		db      int
		tls     bool
		user    string
		bad     bool
	}{
		{url: "redis://127.0.0.1:6379", addrs: 1},
		{url: "redis://u:p@h:1/3", addrs: 1, db: 3, user: "u"},
		{url: "rediss://h:6380/0", addrs: 1, tls: true},
		{url: "redis+cluster://a:1,b:2,c:3", addrs: 3, cluster: true},
		{url: "rediss+cluster://a:1", addrs: 1, cluster: true, tls: true},
		{url: "redis+sentinel://s1:26379,s2:26379/mymaster/2", addrs: 2, master: "mymaster", db: 2},
		{url: "redis://a:1,b:2", bad: true},
		{url: "redis+sentinel://s1:1", bad: true},
		{url: "redis+cluster://a:1/2", bad: true},
		{url: "http://a:1", bad: true},
		{url: "redis://h:1/x", bad: true},
		{url: "redis://", bad: true},
	} {
		o, err := redis.ParseURL(tc.url)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: accepted", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if len(o.Addrs) != tc.addrs || o.IsClusterMode != tc.cluster || o.MasterName != tc.master || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls || o.Username != tc.user {
			t.Errorf("%s: %+v", tc.url, o)
		}
	}
	if _, err := redis.ParseURL("redis://u:secret@h:1/x"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("an error shows the password: %v", err)
	}
}
