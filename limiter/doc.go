// Package limiter will hold sluice's rate limiting: GCRA token buckets
// (one atomic int64 of state per key) sharded per core, cluster-wide limits
// reconciled to Redis through rueidis client-side caching, strict Redis
// limits and quotas. It imports nothing of sluice's.
//
// Nothing is implemented yet: this is issue 6. The package exists so the
// layout the design fixes (cmd, edge, pool, lb, limiter, bench, deploy) is
// in place from the start.
package limiter
