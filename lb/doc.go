// Package lb chooses an upstream target for a request.
//
// A Picker is built once per target set (when a snapshot or a discovery
// update is built) over an immutable slice of *Target and is then only
// read. Per-target state (in-flight count, peak-EWMA latency, whether the
// target may be used, slow start) lives in the Target itself (target.go),
// so every picker and every snapshot sharing the target sees the same
// numbers. New (lb.go) builds a picker by balancer name; each balancer has
// its own file: roundrobin.go, weighted.go, random.go, leastconn.go,
// p2c.go, hash.go (ip_hash and consistent_hash on one ring).
//
// Invariants:
//   - Pick never blocks, never allocates and touches only atomics; it
//     returns -1 rather than wait when nothing may be chosen.
//   - Whether a target may be used is decided elsewhere (pool: health
//     checks, outlier ejection, circuit breakers) and published here as
//     state bits; lb only reads them. In panic mode (Pick.PanicMode) health
//     and ejection are ignored, an open circuit never is.
//   - Time-based changes (an ejection ending) are made by timers, so a pick
//     reads the clock only to age p2c_ewma's latency scores and for targets
//     warming up after slow start (MonoNow: monotonic, no allocation).
//
// lb imports nothing of sluice's (pool imports it, never the reverse).
package lb
