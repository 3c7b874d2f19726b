package redis_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/storage/redis/redistest"
	"github.com/candor-en/candor/storage/storetest"
	"github.com/candor-en/candor/verification/account"
)

func TestAccountStoreConformance(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	var n atomic.Int64
	storetest.TestAccounts(t, func(t *testing.T) account.Store {
		return redis.NewAccountStore(redis.New(rdb, redis.WithPrefix(fmt.Sprintf("acct%d", n.Add(1)))))
	})
}

func TestAccountStoreConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-master cluster")
	}
	rdb := redistest.StartCluster(t)
	var n atomic.Int64
	storetest.TestAccounts(t, func(t *testing.T) account.Store {
		return redis.NewAccountStore(redis.New(rdb, redis.WithPrefix(fmt.Sprintf("cacct%d", n.Add(1)))))
	})
}
