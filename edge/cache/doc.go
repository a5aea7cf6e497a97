// Package cache is sluice's response cache: where answers are kept
// (Store: Memory, Redis, or Tiered, memory in front of Redis), the
// HTTP caching rules that decide what is kept and for how long (RFC 9111:
// policy.go, cachecontrol.go), the key a request is found by (key.go)
// and the coalescing of concurrent misses (flight.go). The request path
// itself (what is looked up, served, revalidated, stored) is edge's
// cacheStep (edge/step_cache.go); this package knows nothing of routes or
// of the gateway and never imports edge.
//
// Invariants:
//   - An Entry is immutable once stored: hits share it (its body is
//     written to the client without a copy), a refresh stores a new one.
//   - A memory hit allocates nothing: the key is hashed with a
//     per-process random seed, and the full key text is compared, so a
//     collision is a miss, never another request's answer.
//   - Stores never fail a request: a Redis that times out or is down is
//     a miss (and a dropped write), with Redis skipped for a second after
//     a failure. Only purges report errors (an admin must know).
//   - Key parts after the URL start with NUL, which no host, path or
//     query part can hold (they are replaced), so one key's URL can't
//     forge another's parts. The URL part (URLPart) is what a key purge
//     names; in Redis each URL keeps a set of its stored keys, so that
//     purge never walks the keyspace.
//
// # Why otter for the memory tier
//
// Measured with bench/cachecmp (go test -v -bench . -cpu 1,2 in that
// directory; 2-core shared VM, 2026-12-02): a Zipf key stream over 1M
// keys, entries of 1..16 KiB, a 64 MiB bound.
//
//	                      otter v2.4.0   ristretto v2.4.2
//	hit ratio, s=1.01     0.630          0.657
//	hit ratio, s=1.10     0.769          0.786
//	hit ratio, s=1.30     0.939          0.938
//	Get, 1 core           23.7 ns        36.1 ns
//	Get, 2 cores          23.8 ns        45.4 ns
//
// Ristretto keeps 2-3 points more hits on the flatter streams; otter's
// Get is 1.5-1.9x cheaper, and otter was chosen for what the cache needs
// beyond ratio: a Set is visible at once (ristretto applies Sets
// asynchronously and may drop them under contention, so the entry a
// coalesced leader just stored could be missing for its 99 waiters'
// next requests), entries can be walked (purge by prefix and by tag
// needs that; ristretto keeps only key hashes), and deletions say why
// (evictions for room are counted per route).
package cache
