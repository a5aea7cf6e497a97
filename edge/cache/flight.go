package cache

import (
	"sync"
	"time"
)

// Flights coalesce concurrent misses (request collapsing): the first
// request for a key leads and goes upstream, the others wait for its
// answer, bounded, then go upstream themselves.
type Flights struct {
	// Lead bounds how long a flight takes new waiters (0: no bound): a
	// leader still relaying a long streamed answer to a slow client
	// (the flight ends once it is stored) is not waited for by requests
	// arriving after that; the first of them leads a flight of its own.
	Lead time.Duration

	mu sync.Mutex
	m  map[uint64]*Flight
}

// Flight is one leader's fetch.
type Flight struct {
	done  chan struct{}
	start time.Time
	entry *Entry // what the leader stored; nil: nothing usable
}

// Join returns the key's flight and whether the caller leads it. A
// leader must call Done.
func (f *Flights) Join(h uint64) (*Flight, bool) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[h]; fl != nil && (f.Lead <= 0 || now.Sub(fl.start) < f.Lead) {
		return fl, false
	}
	if f.m == nil {
		f.m = map[uint64]*Flight{}
	}
	fl := &Flight{done: make(chan struct{}), start: now}
	f.m[h] = fl // replaces one past Lead, whose Done then leaves this one be
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
