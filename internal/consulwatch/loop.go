package consulwatch

import (
	"context"
	"math/rand/v2"
	"time"
)

// Pacing, after Consul's guidance. Variables only so this package's tests
// can shorten them.
var (
	minGap     = 50 * time.Millisecond // between the starts of two queries
	minBackoff = time.Second           // after the first failure
	maxBackoff = 30 * time.Second      // the most a failure run backs off
)

// backoffJitter varies each backoff by +-20%.
const backoffJitter = 0.2

// Loop follows one Consul resource with blocking queries; see the package
// doc for what it guarantees. Only Query is required.
type Loop struct {
	// Query reads the resource once, blocking while its index is still
	// index (for at most the query's wait time; index 0: answer at once),
	// handles the answer, and returns the answer's index (X-Consul-Index,
	// api.QueryMeta.LastIndex). An error makes the loop back off and ask
	// again with the same index.
	Query func(ctx context.Context, index uint64) (uint64, error)
	// OnError, if set, is told of each failed query and the index it
	// waited on. first is true for the first failure since the last
	// success: log an outage once, not every retry.
	OnError func(err error, index uint64, first bool)
	// OnRecover, if set, is called after the first successful query that
	// follows failures (and after Query handled its answer).
	OnRecover func()
	// OnReset, if set, is told when the index went backwards (from, to)
	// and the next query starts over from 0.
	OnReset func(from, to uint64)
}

// Run queries until ctx ends, starting from index (0: the first query
// answers at once; or the index of an answer the caller already has).
func (l Loop) Run(ctx context.Context, index uint64) {
	var backoff time.Duration // 0 while queries succeed
	var last time.Time
	for ctx.Err() == nil {
		if !sleep(ctx, minGap-time.Since(last)) {
			return
		}
		last = time.Now()
		got, err := l.Query(ctx, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if l.OnError != nil {
				l.OnError(err, index, backoff == 0)
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			sleep(ctx, time.Duration(float64(backoff)*(1+backoffJitter*(2*rand.Float64()-1))))
			continue
		}
		if backoff > 0 {
			backoff = 0
			if l.OnRecover != nil {
				l.OnRecover()
			}
		}
		next := nextIndex(index, got)
		if next == 0 && l.OnReset != nil {
			l.OnReset(index, got)
		}
		index = next
	}
}

// nextIndex is the index to wait on after an answer with index got to a
// query that waited on prev: got, except that 0 is taken as 1 and an index
// that went backwards resets to 0.
func nextIndex(prev, got uint64) uint64 {
	if got == 0 {
		got = 1
	}
	if got < prev {
		return 0
	}
	return got
}

// sleep waits for d or until ctx ends, and reports whether it waited the
// whole d (d <= 0: at once, true unless ctx has ended).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
