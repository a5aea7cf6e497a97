package limiter

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

func strictOn(t *testing.T, addr string, instances int) *Strict {
	return &Strict{Client: testutil.RedisClient(t, addr), Local: New(), Timeout: 200 * time.Millisecond, Instances: instances,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// Three "instances" (own connections) hammer one key concurrently: the
// total admitted is exactly the burst.
func TestStrictIsExactAcrossInstances(t *testing.T) {
	r := testutil.StartRedis(t)
	insts := []*Strict{strictOn(t, r.Addr, 3), strictOn(t, r.Addr, 3), strictOn(t, r.Addr, 3)}
	lim := Limit{Rate: 50, Per: time.Hour, Burst: 50}
	key := []byte(fmt.Sprint("exact-", time.Now().UnixNano()))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, s := range insts {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(s *Strict) {
				defer wg.Done()
				for i := 0; i < 40; i++ {
					if s.Take(key, lim, 0).Allowed {
						allowed.Add(1)
					}
				}
			}(s)
		}
	}
	wg.Wait()
	if allowed.Load() != 50 {
		t.Fatalf("480 requests on a strict limit of 50 admitted %d", allowed.Load())
	}
	res := insts[0].Take(key, lim, 0)
	if res.Allowed || res.RetryAfter < 70*time.Second || res.RetryAfter > 72*time.Second {
		t.Errorf("over the limit: %+v (a token every 72s)", res)
	}
	if insts[0].FallbackActive() {
		t.Error("fallback active with Redis up")
	}
}

// Redis dies: answers keep coming (within the timeout), limited locally
// with the limit split over the instances; Redis returns: back to exact.
func TestStrictFallsBackWhenRedisDies(t *testing.T) {
	r := testutil.StartRedis(t)
	s := strictOn(t, r.Addr, 2)
	lim := Limit{Rate: 10, Per: time.Hour, Burst: 10}
	r.Stop()
	allowed := 0
	for i := 0; i < 20; i++ {
		if s.Take([]byte("k"), lim, int64(time.Hour)).Allowed {
			allowed++
		}
	}
	if !s.FallbackActive() || allowed != 5 {
		t.Fatalf("with Redis down: fallback %v, %d admitted (want 10/2 instances = 5)", s.FallbackActive(), allowed)
	}
	back := testutil.StartRedisAt(t, r.Addr)
	_ = back
	deadline := time.Now().Add(10 * time.Second)
	for s.FallbackActive() || !s.Take([]byte("k2"), lim, int64(time.Hour)).Allowed {
		if time.Now().After(deadline) {
			t.Fatal("never went back to Redis")
		}
		time.Sleep(50 * time.Millisecond)
		s.Take([]byte("probe"), lim, int64(time.Hour))
	}
}
