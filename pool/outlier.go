package pool

import (
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
)

// outlierState is a target's passive-ejection bookkeeping.
type outlierState struct {
	consecutive  atomic.Int32 // failures in a row
	ejections    atomic.Int32 // times ejected (grows the next ejection)
	ejectedUntil atomic.Int64 // unix ns, for display
	lastEjected  atomic.Int64 // unix ns
}

// noteFailure counts a failure and ejects the target when it has failed
// ConsecutiveFailures times in a row, unless that would take more than
// MaxEjectionPercent of the pool out. The nth ejection lasts n x
// BaseEjection (capped at MaxEjection); a target that stayed in for
// MaxEjection since its last ejection starts again from one.
func (p *Pool) noteFailure(t *Target) {
	o := t.settings.Outlier
	if o.ConsecutiveFailures <= 0 {
		return
	}
	if int(t.outlier.consecutive.Add(1)) < o.ConsecutiveFailures {
		return
	}
	if t.State()&lb.Ejected != 0 {
		return
	}
	ejected := 0
	for _, other := range p.Targets {
		if other.State()&lb.Ejected != 0 {
			ejected++
		}
	}
	if (ejected+1)*100 > o.MaxEjectionPercent*len(p.Targets) {
		return // keep enough targets in to carry the load
	}
	now := time.Now()
	if last := t.outlier.lastEjected.Load(); last != 0 && now.Sub(time.Unix(0, last)) > o.MaxEjection {
		t.outlier.ejections.Store(0)
	}
	n := t.outlier.ejections.Add(1)
	d := min(time.Duration(n)*o.BaseEjection, o.MaxEjection)
	// Only one of several concurrent failures gets to eject.
	if !t.Block(lb.Ejected) {
		t.outlier.ejections.Add(-1)
		return
	}
	t.outlier.lastEjected.Store(now.UnixNano())
	t.outlier.ejectedUntil.Store(now.Add(d).UnixNano())
	t.log.Warn("target ejected", "upstream", p.Name, "target", t.URL,
		"consecutive_failures", t.outlier.consecutive.Load(), "for", d.String(), "ejection", n)
	time.AfterFunc(d, func() {
		t.outlier.consecutive.Store(0)
		t.outlier.ejectedUntil.Store(0)
		if t.SetState(lb.Ejected, false) {
			t.StartWarmup(t.settings.SlowStart)
		}
		t.log.Info("target back from ejection", "upstream", p.Name, "target", t.URL)
	})
}

// EjectedUntil is when the current ejection ends (zero if not ejected).
func (t *Target) EjectedUntil() time.Time {
	if u := t.outlier.ejectedUntil.Load(); u != 0 {
		return time.Unix(0, u)
	}
	return time.Time{}
}

// ConsecutiveFailures is the current run of failures.
func (t *Target) ConsecutiveFailures() int { return int(t.outlier.consecutive.Load()) }
