package pool

import (
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
)

// window counts two things (say requests and failures) over a sliding
// period split into buckets, lock-free. A bucket is reset by whichever
// writer first moves it to a new epoch; a count that races with that reset
// can be lost, which is fine for ratios and budgets: they are estimates.
type window struct {
	width   int64 // bucket width, ns
	buckets [windowBuckets]bucket
}

const windowBuckets = 10

type bucket struct {
	epoch atomic.Int64
	a, b  atomic.Int64
}

func newWindow(period time.Duration) *window {
	return &window{width: max(int64(period)/windowBuckets, 1)}
}

func (w *window) bucket(now int64) *bucket {
	epoch := now / w.width
	bk := &w.buckets[epoch%windowBuckets]
	if old := bk.epoch.Load(); old != epoch && bk.epoch.CompareAndSwap(old, epoch) {
		bk.a.Store(0)
		bk.b.Store(0)
	}
	return bk
}

// add counts da and db now.
func (w *window) add(now int64, da, db int64) {
	bk := w.bucket(now)
	if da != 0 {
		bk.a.Add(da)
	}
	if db != 0 {
		bk.b.Add(db)
	}
}

// sums returns the totals over the period ending now.
func (w *window) sums(now int64) (a, b int64) {
	epoch := now / w.width
	for i := range w.buckets {
		bk := &w.buckets[i]
		if e := bk.epoch.Load(); e > epoch-windowBuckets && e <= epoch {
			a += bk.a.Load()
			b += bk.b.Load()
		}
	}
	return a, b
}

func (w *window) reset() {
	for i := range w.buckets {
		w.buckets[i].epoch.Store(0)
		w.buckets[i].a.Store(0)
		w.buckets[i].b.Store(0)
	}
}

// RetryBudget caps retries at a fraction of requests over the last 10 s,
// with a floor so that a quiet upstream can still retry (Envoy's retry
// budget). Without it, a failing upstream under load gets every request
// N times: retries turn an outage into an overload.
type RetryBudget struct {
	ratio    float64
	minPer10 int64
	w        *window // a: requests, b: retries
	denied   atomic.Int64
}

// newRetryBudget allows retries up to ratio x requests (over 10 s), and at
// least minPerSecond per second.
func newRetryBudget(ratio float64, minPerSecond int) *RetryBudget {
	return &RetryBudget{ratio: ratio, minPer10: int64(minPerSecond) * 10, w: newWindow(10 * time.Second)}
}

// Request counts one client request (not its retries).
func (b *RetryBudget) Request() { b.w.add(lb.MonoNow(), 1, 0) }

// TryRetry takes one retry from the budget, or reports that there is none.
func (b *RetryBudget) TryRetry() bool {
	now := lb.MonoNow()
	reqs, retries := b.w.sums(now)
	allowed := max(int64(b.ratio*float64(reqs)), b.minPer10)
	if retries >= allowed {
		b.denied.Add(1)
		return false
	}
	b.w.add(now, 0, 1)
	return true
}

// Denied counts retries refused for lack of budget.
func (b *RetryBudget) Denied() int64 { return b.denied.Load() }
