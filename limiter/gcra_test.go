package limiter

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBucketBurstThenRate(t *testing.T) {
	l := New()
	lim := Limit{Rate: 10, Per: time.Second, Burst: 5} // a token every 100ms, 5 at once
	key := []byte("k")
	now := int64(time.Hour)
	for i := 0; i < 5; i++ {
		r := l.Take(key, lim, now)
		if !r.Allowed || r.Remaining != 4-i || r.Limit != 5 {
			t.Fatalf("burst request %d: %+v", i, r)
		}
	}
	r := l.Take(key, lim, now)
	if r.Allowed || r.RetryAfter != 100*time.Millisecond || r.ResetAfter != 500*time.Millisecond {
		t.Fatalf("over the burst: %+v", r)
	}
	if r := l.Take(key, lim, now+int64(99*time.Millisecond)); r.Allowed {
		t.Fatal("allowed before a token refilled")
	}
	if r := l.Take(key, lim, now+int64(100*time.Millisecond)); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("after one interval: %+v", r)
	}
	// Other keys are independent.
	if r := l.Take([]byte("other"), lim, now); !r.Allowed || r.Remaining != 4 {
		t.Fatalf("other key: %+v", r)
	}
	// Long idle: full bucket again, never more than the burst.
	later := now + int64(time.Hour)
	allowed := 0
	for i := 0; i < 20; i++ {
		if l.Take(key, lim, later).Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("after idling, %d allowed at once, want the burst (5)", allowed)
	}
}

// Over a long run the admitted rate is the configured rate, whatever the
// arrival pattern (no fixed-window boundary doubling).
func TestSustainedRate(t *testing.T) {
	l := New()
	lim := Limit{Rate: 100, Per: time.Second, Burst: 10}
	start := int64(time.Hour)
	allowed := 0
	for ms := 0; ms < 10000; ms++ { // 10 s, 3 attempts every ms
		for k := 0; k < 3; k++ {
			if l.Take([]byte("k"), lim, start+int64(ms)*int64(time.Millisecond)).Allowed {
				allowed++
			}
		}
	}
	if allowed < 1000 || allowed > 1010 {
		t.Fatalf("10 s at 100/s with burst 10 admitted %d, want 1000..1010", allowed)
	}
}

func TestConcurrentTakesNeverOverAdmit(t *testing.T) {
	l := New()
	lim := Limit{Rate: 1, Per: time.Hour, Burst: 100}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	now := int64(time.Hour)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if l.Take([]byte("hot"), lim, now).Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 100 {
		t.Fatalf("8000 concurrent takes on a burst of 100 admitted %d", allowed.Load())
	}
}

func TestEvictIdleKeys(t *testing.T) {
	l := New()
	lim := Limit{Rate: 10, Per: time.Second, Burst: 10}
	now := int64(time.Hour)
	for i := 0; i < 1000; i++ {
		l.Take([]byte(fmt.Sprint("k", i)), lim, now)
	}
	if l.Len() != 1000 {
		t.Fatal(l.Len())
	}
	if n := l.Evict(now); n != 0 {
		t.Fatalf("evicted %d keys still refilling", n)
	}
	if n := l.Evict(now + int64(time.Second)); n != 1000 || l.Len() != 0 {
		t.Fatalf("evicted %d, %d left", n, l.Len())
	}
	// An evicted key starts full: the same as keeping it.
	if r := l.Take([]byte("k1"), lim, now+int64(time.Second)); r.Remaining != 9 {
		t.Fatalf("after eviction: %+v", r)
	}
}

func TestShardCount(t *testing.T) {
	if n := len(New().shards); n < 16 || n&(n-1) != 0 {
		t.Fatalf("%d shards", n)
	}
}

func TestAbsurdRatesDoNotPanic(t *testing.T) {
	l := New()
	for i, lim := range []Limit{{Rate: 1 << 40, Per: time.Second, Burst: 1 << 40}, {Rate: 0, Per: 0, Burst: 0}, {Rate: 1, Per: time.Nanosecond, Burst: 1}} {
		if r := l.Take([]byte(fmt.Sprint("k", i)), lim, 1); !r.Allowed {
			t.Errorf("%+v: first take refused: %+v", lim, r)
		}
	}
}
