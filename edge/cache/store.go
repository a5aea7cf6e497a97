package cache

import (
	"context"
	"strings"
)

// Store holds entries by key text. Two real kinds (Memory, Redis) and
// their combination (Tiered). Get and Set never return errors: a store
// that can't answer (Redis down) is a miss, and a write it can't make is
// dropped, so the cache degrades to pass-through and never fails a
// request.
type Store interface {
	// Get returns the entry stored under key. The entry is shared: the
	// caller must not change it. key is not retained.
	Get(ctx context.Context, key []byte) (*Entry, bool)
	// Set stores e under e.Key (replacing any), for e.Retain(now).
	Set(ctx context.Context, e *Entry, now int64)
	// Purge removes the entries p selects and returns how many this
	// store removed (for Redis, the shared copies; every instance's
	// memory tier is told too).
	Purge(ctx context.Context, p Purge) (int, error)
	// Close stops the store's goroutines.
	Close()
}

// Purge kinds.
const (
	PurgeKey    = "key"    // one key and its variants
	PurgePrefix = "prefix" // every key starting with Arg
	PurgeTag    = "tag"    // every entry tagged Arg (Surrogate-Key / Cache-Tag)
	// PurgeExact removes the one entry stored under Arg (a primary key:
	// with it gone, its variants are no longer found either). What an
	// unsafe request invalidates (RFC 9111 4.4); cheap, no walk.
	PurgeExact = "exact"
	// PurgeInvalidate removes Arg's entries and every key extending it
	// at a field boundary (Arg + "\x00..."): Arg is a URL part and route
	// (appendKey's first fields), so one route's entries for the URL go
	// under every scheme, forwarded host, caller (authorized routes) and
	// variant. What an unsafe request invalidates (RFC 9111 4.4); in Redis
	// found through the URL's set, never a keyspace scan.
	PurgeInvalidate = "invalidate"
)

// Purge says what to remove.
type Purge struct {
	Kind, Arg string
}

// Matches reports whether p selects e.
func (p Purge) Matches(e *Entry) bool {
	switch p.Kind {
	case PurgeKey, PurgeInvalidate:
		// The key itself, and its variants (key + "\x00v:..."): a purge
		// names the URL, not each variant.
		return e.Key == p.Arg || strings.HasPrefix(e.Key, p.Arg+"\x00")
	case PurgePrefix:
		return strings.HasPrefix(e.Key, p.Arg)
	case PurgeTag:
		return e.HasTag(p.Arg)
	case PurgeExact:
		return e.Key == p.Arg
	}
	return false
}

// Valid reports whether p can be carried out.
func (p Purge) Valid() bool {
	switch p.Kind {
	case PurgeKey, PurgeTag, PurgeExact, PurgeInvalidate:
		return p.Arg != ""
	case PurgePrefix:
		return true // "" purges everything
	}
	return false
}

// Events are what a store reports for metrics, per route (the route
// that stored the entry). Any may be nil.
type Events struct {
	// Stored is called with the bytes an entry added (positive) or took
	// away (negative) from a memory store, and whether it was evicted
	// for room.
	Stored func(route string, bytes int64, evicted bool)
}
