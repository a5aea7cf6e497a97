package cache

import (
	"sync"
	"time"
)

// Flights coalesce concurrent misses (request collapsing): the first
// request for a key leads and goes upstream, the others wait for its
// answer, bounded, then go upstream themselves.
type Flights struct {
	mu sync.Mutex
	m  map[uint64]*Flight
}

// Flight is one leader's fetch.
type Flight struct {
	done  chan struct{}
	entry *Entry // what the leader stored; nil: nothing usable
}

// Join returns the key's flight and whether the caller leads it. A
// leader must call Done.
func (f *Flights) Join(h uint64) (*Flight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[h]; fl != nil {
		return fl, false
	}
	if f.m == nil {
		f.m = map[uint64]*Flight{}
	}
	fl := &Flight{done: make(chan struct{})}
	f.m[h] = fl
	return fl, true
}

// Done ends a flight, handing e (nil: nothing stored) to its waiters.
func (f *Flights) Done(h uint64, fl *Flight, e *Entry) {
	f.mu.Lock()
	if f.m[h] == fl {
		delete(f.m, h)
	}
	f.mu.Unlock()
	fl.entry = e
	close(fl.done)
}

// Wait waits up to d for the leader and returns what it stored (nil: the
// leader's answer could not be stored, or d passed).
func (fl *Flight) Wait(d time.Duration) *Entry {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-fl.done:
		return fl.entry
	case <-t.C:
		return nil
	}
}
