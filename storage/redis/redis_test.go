package redis_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/storage/redis/redistest"
	"github.com/candor-en/candor/storage/storetest"
)

func TestConformanceStandalone(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	var n atomic.Int64
	fresh := func() *redis.Store { return redis.New(rdb, redis.WithPrefix(fmt.Sprintf("t%d", n.Add(1)))) }
	storetest.TestExposures(t, func(t *testing.T) storetest.ExposureStore { return fresh() })
	storetest.TestAuthorities(t, func(t *testing.T) keyserver.AuthorityStore { return fresh() })
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
