package limiter

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

func clusterOn(t *testing.T, addr string, instances int) *Cluster {
	return &Cluster{Client: testutil.RedisClient(t, addr), Local: New(), Timeout: 300 * time.Millisecond, Instances: instances, Log: quietLog()}
}

// Three instances hammer one key: together they never admit more than the
// limit (leases never exceed the window's room), and at most instances x
// batch fewer (tokens a background refill leased just as an instance's
// load ended are not spent).
func TestClusterStaysWithinItsBoundAcrossInstances(t *testing.T) {
	r := testutil.StartRedis(t)
	insts := []*Cluster{clusterOn(t, r.Addr, 3), clusterOn(t, r.Addr, 3), clusterOn(t, r.Addr, 3)}
	lim := Limit{Rate: 600, Per: time.Hour, Burst: 600}
	key := []byte(fmt.Sprint("cl-", time.Now().UnixNano()))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range insts {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(c *Cluster) {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					if c.Take(key, lim, Now()).Allowed {
						allowed.Add(1)
					}
				}
			}(c)
		}
	}
	wg.Wait()
	if lo := 600 - 3*insts[0].get(key, lim).batch; allowed.Load() > 600 || allowed.Load() < lo {
		t.Fatalf("2400 requests on a cluster limit of 600 admitted %d, want %d..600", allowed.Load(), lo)
	}
	res := insts[1].Take(key, lim, Now())
	if res.Allowed || res.RetryAfter <= 0 {
		t.Fatalf("over the limit: %+v", res)
	}
}

func TestClusterNextWindowAdmitsAgain(t *testing.T) {
	r := testutil.StartRedis(t)
	c := clusterOn(t, r.Addr, 1)
	lim := Limit{Rate: 20, Per: 500 * time.Millisecond, Burst: 20}
	key := []byte(fmt.Sprint("win-", time.Now().UnixNano()))
	n := 0
	for i := 0; i < 100; i++ {
		if c.Take(key, lim, Now()).Allowed {
			n++
		}
	}
	if n > 20 || n < 1 {
		t.Fatalf("first burst admitted %d (limit 20)", n)
	}
	// Two windows later the sliding estimate is empty again.
	time.Sleep(time.Second + 100*time.Millisecond)
	n = 0
	for i := 0; i < 100; i++ {
		if c.Take(key, lim, Now()).Allowed {
			n++
		}
	}
	if n < 15 || n > 20 {
		t.Fatalf("after two windows, %d admitted, want about the limit again", n)
	}
}

// Redis dies under load: answers keep coming, limited locally (limit /
// instances); Redis returns: what was admitted meanwhile is added to the
// shared count, so the window's total still respects the limit.
func TestClusterFallsBackAndReconciles(t *testing.T) {
	r := testutil.StartRedis(t)
	c := clusterOn(t, r.Addr, 2)
	lim := Limit{Rate: 100, Per: time.Hour, Burst: 100}
	key := []byte("reconcile")
	// Use a few tokens while Redis is up.
	for i := 0; i < 10; i++ {
		if !c.Take(key, lim, Now()).Allowed {
			t.Fatal("refused with Redis up")
		}
	}
	r.Stop()
	// Spend the leased tokens, then fall back: 100/2 instances = 50 local.
	local := 0
	for i := 0; i < 200; i++ {
		if c.Take(key, lim, Now()).Allowed {
			local++
		}
	}
	if !c.FallbackActive() {
		t.Fatal("no fallback with Redis down")
	}
	// Leased leftovers are spent first: at most a batch plus the refill
	// that may have landed just before Redis went away.
	if b := int(c.get(key, lim).batch); local < 50 || local > 50+2*b {
		t.Fatalf("with Redis down %d admitted, want the local share (50) plus at most %d leased leftovers", local, 2*b)
	}
	testutil.StartRedisAt(t, r.Addr)
	testutil.WaitFor(t, "a lease to succeed again", func() bool {
		c.get(key, lim).blocked.Store(0)
		c.get(key, lim).expires.Store(0)
		c.Take(key, lim, Now())
		return !c.FallbackActive()
	})
	// The restarted Redis is empty, but the offline admissions were added
	// back by the first successful lease: the count is not zero.
	m, err := c.Client.Do(t.Context(), c.Client.B().Hget().Key("sluice:cl:{reconcile}").Field("c").Build()).AsInt64()
	if err != nil || m < 50 {
		t.Fatalf("shared count after reconciliation: %d %v (want the offline admissions in it)", m, err)
	}
}

// BenchmarkClusterTake: the steady state spends leased tokens locally; no
// Redis call on the request path. go test ./limiter -run '^$' -bench Cluster -benchmem
func BenchmarkClusterTake(b *testing.B) {
	r := testutil.StartRedis(b)
	cl := &Cluster{Client: testutil.RedisClient(b, r.Addr), Local: New(), Timeout: time.Second, Instances: 1, Log: quietLog()}
	lim := Limit{Rate: 1 << 40, Per: time.Hour, Burst: 1 << 40}
	key := []byte("bench")
	cl.Take(key, lim, Now())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cl.Take(key, lim, Now())
	}
}
