package pool

import (
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
)

// retryBudget caps retries at a fraction of requests over the last 10 s,
// with a floor so that a quiet upstream can still retry (Envoy's retry
// budget). Without it, a failing upstream under load gets every request
// N times: retries turn an outage into an overload.
type retryBudget struct {
	ratio    float64
	minPer10 int64
	w        *window // a: requests, b: retries
	denied   atomic.Int64
}

// newRetryBudget allows retries up to ratio x requests (over 10 s), and at
// least minPerSecond per second.
func newRetryBudget(ratio float64, minPerSecond int) *retryBudget {
	return &retryBudget{ratio: ratio, minPer10: int64(minPerSecond) * 10, w: newWindow(10 * time.Second)}
}

// Request counts one client request (not its retries).
func (b *retryBudget) Request() { b.RequestAt(lb.MonoNow()) }

// RequestAt is Request at now (lb.MonoAt of a time the caller has read).
func (b *retryBudget) RequestAt(now int64) { b.w.add(now, 1, 0) }

// TryRetry takes one retry from the budget, or reports that there is none.
func (b *retryBudget) TryRetry() bool {
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
func (b *retryBudget) Denied() int64 { return b.denied.Load() }
