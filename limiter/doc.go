// Package limiter is sluice's rate limiting and quotas.
//
// Local limits are token buckets kept as GCRA (the generic cell rate
// algorithm: one "theoretical arrival time" per key, one atomic int64 of
// state), in shards so cores don't contend (gcra.go, Limiter). The same
// limits run cluster-wide in two ways: Cluster (cluster.go) leases batches
// of tokens from a sliding-window counter in Redis and spends them
// locally; Strict (strict.go) runs GCRA as one atomic Redis script per
// request.
// Quotas (quota.go) count requests per key over hours or days with a
// sliding window, in memory saved to a file (LocalQuotas) or in Redis
// (RedisQuotas); both list their keys with usage a page at a time, the
// Redis one with SCAN (quota_scan.go).
//
// Invariants:
//   - Limiter.Take never blocks on I/O and, for a key already seen, never
//     allocates; a new key costs one small allocation.
//   - Cluster.Take calls Redis only when a key has no leased tokens left
//     (its first request, or traffic that outran the background refill);
//     Strict and RedisQuotas call Redis per request. Every Redis call is
//     bounded by a Timeout, and when Redis fails they fall back to local
//     limits (the limit divided by Instances) or local quotas, log that once
//     per outage (outage.go) and report it: a dead Redis never blocks a
//     request.
//   - Memory is bounded by the keys active in the last burst window: a key
//     whose bucket is full again carries no information and is evicted.
//   - Time comes from the caller (monotonic nanoseconds, Now), so tests and
//     benchmarks control it; Redis scripts take time from Redis (TIME),
//     not from the gateway's clock. Redis keys are hash-tagged
//     ("sluice:rl:{key}", "sluice:cl:{key}", "sluice:quota:{key}") so a
//     key's script runs on one Redis Cluster slot.
//
// limiter imports nothing of sluice's (edge and edge/admin import it).
package limiter
