package consulwatch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestNextIndex(t *testing.T) {
	for _, c := range []struct{ prev, got, want uint64 }{
		{0, 5, 5},   // first answer
		{5, 7, 7},   // moved on
		{7, 7, 7},   // wait time ended, nothing changed
		{7, 3, 0},   // backwards: start over
		{0, 0, 1},   // 0 is taken as 1
		{1, 0, 1},   // ... also after a first answer of 1
		{5, 0, 0},   // 0 after 5: backwards too
		{0, 42, 42}, // the answer after a reset
	} {
		if got := nextIndex(c.prev, c.got); got != c.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", c.prev, c.got, got, c.want)
		}
	}
}

func shorten(t *testing.T) {
	gap, lo, hi := minGap, minBackoff, maxBackoff
	minGap, minBackoff, maxBackoff = time.Millisecond, time.Millisecond, 4*time.Millisecond
	t.Cleanup(func() { minGap, minBackoff, maxBackoff = gap, lo, hi })
}

// One scripted run through everything the loop does: indexes followed,
// failures reported once per outage and backed off, recovery, a reset.
func TestLoopFollowsTheIndexAndBacksOffOnErrors(t *testing.T) {
	shorten(t)
	type answer struct {
		index uint64
		err   error
	}
	down := errors.New("connection refused")
	script := []answer{{5, nil}, {7, nil}, {0, down}, {0, down}, {3, nil}, {0, nil}, {9, nil}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked, events []string
	var starts []time.Time
	Loop{
		Query: func(_ context.Context, index uint64) (uint64, error) {
			asked = append(asked, fmt.Sprint(index))
			starts = append(starts, time.Now())
			a := script[len(asked)-1]
			if len(asked) == len(script) {
				cancel()
			}
			return a.index, a.err
		},
		OnError: func(err error, index uint64, first bool) {
			events = append(events, fmt.Sprintf("error@%d first=%v", index, first))
		},
		OnRecover: func() { events = append(events, "recovered") },
		OnReset:   func(from, to uint64) { events = append(events, fmt.Sprintf("reset %d>%d", from, to)) },
	}.Run(ctx, 0)

	if got, want := fmt.Sprint(asked), "[0 5 7 7 7 0 1]"; got != want {
		t.Errorf("queried with indexes %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(events), "[error@7 first=true error@7 first=false recovered reset 7>3]"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < minGap {
			t.Errorf("queries %d and %d only %v apart", i-1, i, gap)
		}
	}
	// The second failure backs off longer than the first (1x then 2x the
	// minimum, +-20%).
	if first, second := starts[3].Sub(starts[2]), starts[4].Sub(starts[3]); first < minBackoff*8/10 || second < 2*minBackoff*8/10 {
		t.Errorf("backoffs %v then %v", first, second)
	}
}

func TestLoopStopsOnCancel(t *testing.T) {
	// Real pacing: a cancel must cut the 1s backoff short.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	errs := 0
	go func() {
		defer close(done)
		Loop{
			Query:   func(context.Context, uint64) (uint64, error) { return 0, errors.New("down") },
			OnError: func(error, uint64, bool) { errs++ },
		}.Run(ctx, 0)
	}()
	time.Sleep(50 * time.Millisecond) // into the first backoff
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run did not return when its context ended")
	}
	if errs != 1 {
		t.Errorf("%d errors reported, want 1", errs)
	}
}

// A query cut short by the cancel is not reported as an error.
func TestLoopDoesNotReportTheQueryItCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	Loop{
		Query: func(ctx context.Context, _ uint64) (uint64, error) {
			cancel()
			return 0, ctx.Err()
		},
		OnError: func(error, uint64, bool) { t.Error("OnError called for a cancelled query") },
	}.Run(ctx, 0)
}
