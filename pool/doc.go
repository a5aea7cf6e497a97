// Package pool owns sluice's upstreams: one fasthttp.HostClient per target,
// grouped into named pools with a balancer, and what decides whether a
// target gets traffic: active health checks, passive outlier ejection and
// circuit breakers. It also holds the retry budget, the error
// classification the proxy's retry policy uses, and Consul discovery of
// an upstream's targets.
//
// One concern per file: pool.go (Pool, Build, Pick, Report), target.go
// (Target and the state it answers for), registry.go (targets kept across
// reloads), health_active.go, outlier.go, circuit.go, retry_budget.go
// (over window.go's sliding counters), classify.go (ErrKind), transport.go
// (the HostClient transport: streamed bodies, stale connections),
// consul.go (ServiceWatcher), tls.go (ClientTLS: https:// targets,
// TLS error classification).
//
// Invariants:
//   - A Pool is immutable once built; a config reload builds new Pools.
//   - Targets (their HostClients, open connections, counters, health,
//     ejection and circuit state) are shared through a Registry keyed by
//     everything that shapes them, so a reload that leaves a target
//     unchanged keeps all of it.
//   - Nothing on the request path (Pick, Report) takes a lock or does I/O;
//     health checks, discovery and timers run on their own goroutines and
//     publish state as atomic bits on lb.Target. Code outside pool reads a
//     target's state through its methods (Usable, Status, CircuitState,
//     ...), never by decoding those bits.
//   - fasthttp's own retries are off (MaxIdemponentCallAttempts = 1): sluice
//     decides what is retried.
//   - A Neutral outcome (the client hung up, the gateway gave up) counts
//     toward nothing: not ejection, not the circuit, not the latency
//     average.
//
// pool may import lb and internal/consulwatch; it never imports edge or
// any of its sub-packages.
package pool
