package cache

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// Memory is a byte-bounded in-process store (otter: S3-FIFO-style
// admission and eviction, doc.go says why). Entries are keyed by a hash
// of the key text with a per-process seed, and a hit compares the full
// key text, so a hash collision is a miss, never another answer; the
// seed is random so a client can't aim for collisions.
type Memory struct {
	c      *otter.Cache[uint64, *Entry]
	seed   maphash.Seed
	events Events

	// urls indexes the entries by URL part (URLPart): a key purge and
	// the invalidation after every successful unsafe request (RFC 9111
	// 4.4) look at the URL's few entries instead of walking the whole
	// store, which a client POSTing in a loop could otherwise make cost
	// O(entries) per request. Kept on Set and on otter's deletions.
	mu   sync.Mutex
	urls map[string]map[uint64]struct{}
}

var _ Store = (*Memory)(nil)

// NewMemory returns a store holding at most maxBytes (Entry.Size).
func NewMemory(maxBytes int64, ev Events) (*Memory, error) {
	m := &Memory{seed: maphash.MakeSeed(), events: ev, urls: map[string]map[uint64]struct{}{}}
	c, err := otter.New(&otter.Options[uint64, *Entry]{
		MaximumWeight: uint64(max(maxBytes, 1)),
		Weigher:       func(_ uint64, e *Entry) uint32 { return uint32(min(e.Size(), 1<<31)) },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(en otter.Entry[uint64, *Entry]) time.Duration {
			return en.Value.Retain(time.Now().UnixNano())
		}),
		OnDeletion: m.deleted,
	})
	if err != nil {
		return nil, err
	}
	m.c = c
	return m, nil
}

func (m *Memory) deleted(ev otter.DeletionEvent[uint64, *Entry]) {
	// A replaced entry's key stays stored (under the same hash). An
	// eviction racing a new Set of the same key can drop the new entry's
	// index line: that entry then misses a purge and lives to its expiry,
	// the price of not taking the index lock inside otter's callbacks
	// twice.
	if ev.Cause != otter.CauseReplacement {
		m.unindex(URLPart(ev.Value.Key), ev.Key)
	}
	if m.events.Stored != nil {
		m.events.Stored(ev.Value.Route, -int64(ev.Value.Size()), ev.Cause == otter.CauseOverflow)
	}
}

func (m *Memory) hash(key []byte) uint64 { return maphash.Bytes(m.seed, key) }

// Get looks key up. No allocation.
func (m *Memory) Get(_ context.Context, key []byte) (*Entry, bool) {
	e, ok := m.c.GetIfPresent(m.hash(key))
	if !ok || e.Key != string(key) {
		return nil, false
	}
	return e, true
}

// Set stores e.
func (m *Memory) Set(_ context.Context, e *Entry, _ int64) {
	h := m.hash(s2b(e.Key))
	m.index(URLPart(e.Key), h)
	m.c.Set(h, e)
	if m.events.Stored != nil {
		m.events.Stored(e.Route, int64(e.Size()), false)
	}
}

func (m *Memory) index(url string, h uint64) {
	m.mu.Lock()
	set := m.urls[url]
	if set == nil {
		set = map[uint64]struct{}{}
		m.urls[url] = set
	}
	set[h] = struct{}{}
	m.mu.Unlock()
}

func (m *Memory) unindex(url string, h uint64) {
	m.mu.Lock()
	if set := m.urls[url]; set != nil {
		delete(set, h)
		if len(set) == 0 {
			delete(m.urls, url)
		}
	}
	m.mu.Unlock()
}

// Purge removes the entries p selects: a key purge and an invalidation
// through the URL index, a prefix or tag purge by a walk over all
// entries (rare admin calls).
func (m *Memory) Purge(_ context.Context, p Purge) (int, error) {
	if p.Kind == PurgeExact {
		h := m.hash(s2b(p.Arg))
		if e, ok := m.c.GetIfPresent(h); ok && e.Key == p.Arg {
			if _, ok := m.c.Invalidate(h); ok {
				return 1, nil
			}
		}
		return 0, nil
	}
	n := 0
	if p.Kind == PurgeKey || p.Kind == PurgeInvalidate {
		m.mu.Lock()
		set := m.urls[URLPart(p.Arg)]
		hashes := make([]uint64, 0, len(set))
		for h := range set {
			hashes = append(hashes, h)
		}
		m.mu.Unlock()
		for _, h := range hashes {
			if e, ok := m.c.GetIfPresent(h); ok && p.Matches(e) {
				if _, ok := m.c.Invalidate(h); ok {
					n++
				}
			}
		}
		return n, nil
	}
	for k, e := range m.c.All() {
		if p.Matches(e) {
			if _, ok := m.c.Invalidate(k); ok {
				n++
			}
		}
	}
	return n, nil
}

// Bytes is what the store holds now (Entry.Size summed).
func (m *Memory) Bytes() uint64 { return m.c.WeightedSize() }

// Close stops otter's goroutines.
func (m *Memory) Close() { m.c.StopAllGoroutines() }
