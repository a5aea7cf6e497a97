package pool

import (
	"sync/atomic"
	"time"
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
