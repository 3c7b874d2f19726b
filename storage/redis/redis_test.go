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
