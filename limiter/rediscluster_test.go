package limiter

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/sluicegw/sluice/internal/testutil"
)

// Strict limits, cluster leases and quotas against a real three-master
// Redis Cluster: every script touches one hash-tagged key, so each runs on
// the node owning its slot, and the results are as exact as on one server.
// Listing quotas scans each master in turn.
func TestOnARealRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	addrs := testutil.StartRedisCluster(t)
	client := func() rueidis.Client { return testutil.RedisClient(t, addrs...) }
	lim := Limit{Rate: 60, Per: time.Hour, Burst: 60}
	for _, kind := range []string{"strict", "cluster"} {
		var takers []func(key []byte) bool
		var fallbacks []func() bool
		// cluster may leave up to instances x batch leased tokens unspent
		// when load stops (batch = 60/3/10 = 2); strict is exact.
		lo := int64(60)
		if kind == "cluster" {
			lo = 60 - 3*2
		}
		for i := 0; i < 3; i++ {
			c := client()
			if kind == "strict" {
				s := &Strict{Client: c, Local: New(), Timeout: time.Second, Instances: 3, Log: quietLog()}
				takers = append(takers, func(k []byte) bool { return s.Take(k, lim, Now()).Allowed })
				fallbacks = append(fallbacks, s.FallbackActive)
			} else {
				cl := &Cluster{Client: c, Local: New(), Timeout: time.Second, Instances: 3, Log: quietLog()}
				takers = append(takers, func(k []byte) bool { return cl.Take(k, lim, Now()).Allowed })
				fallbacks = append(fallbacks, cl.FallbackActive)
			}
		}
		// Several keys, so they spread over the three masters' slots.
		for k := 0; k < 5; k++ {
			key := []byte(fmt.Sprintf("%s-%d-%d", kind, k, time.Now().UnixNano()))
			var allowed atomic.Int64
			var wg sync.WaitGroup
			for _, take := range takers {
				wg.Add(1)
				go func(take func([]byte) bool) {
					defer wg.Done()
					for i := 0; i < 50; i++ {
						if take(key) {
							allowed.Add(1)
						}
					}
				}(take)
			}
			wg.Wait()
			for _, f := range fallbacks {
				if f() {
					t.Fatalf("%s on a Redis Cluster, key %s: a limiter fell back to local limits (Redis errors; see the log)", kind, key)
				}
			}
			if allowed.Load() > 60 || allowed.Load() < lo {
				t.Fatalf("%s on a Redis Cluster, key %s: %d admitted of 150, want %d..60", kind, key, allowed.Load(), lo)
			}
		}
	}
	q := &RedisQuotas{Client: client(), Timeout: time.Second, Log: quietLog()}
	q.Fallback, _ = OpenLocalQuotas("", time.Hour, quietLog())
	defer q.Fallback.Close()
	checkQuota(t, q, fmt.Sprint("cluster-quota-", time.Now().UnixNano()))
	// Listing goes through every master: the keys hash to slots on all
	// three, and each comes back with its usage.
	checkList(t, q, fmt.Sprint("cluster-list-", time.Now().UnixNano(), "-"), false)
}
