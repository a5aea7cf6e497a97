package limiter

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// leaseScript grants up to ARGV[3] tokens from a sliding window of
// ARGV[2] per ARGV[1] microseconds (the same estimate as quotas), on
// Redis's clock, and first adds ARGV[4] requests admitted while Redis was
// unreachable. It never grants more than the window has room for, so all
// instances together can't exceed the limit.
// Returns {granted, microseconds left in the current window, wait_us}
// where wait_us is how long until a token frees up when none is granted.
var leaseScript = rueidis.NewLuaScript(slidingWindowLua + `
local want = tonumber(ARGV[3])
local extra = tonumber(ARGV[4])
c = c + extra
local est = p * (per - offset) / per + c
local room = math.floor(limit - est)
local grant = math.max(math.min(want, room), 0)
c = c + grant
redis.call('HSET', KEYS[1], 'w', w, 'c', c, 'p', p, 'per', per)
redis.call('PEXPIRE', KEYS[1], math.floor(2 * per / 1000) + 1000)
local wait = 0
if grant == 0 then
  if c >= limit or p == 0 then
    wait = per - offset
  else
    -- when the previous window's share has shrunk enough for one more
    wait = math.max(per * (1 - (limit - 1 - c) / p) - offset, 1000)
  end
end
return {grant, per - offset, math.floor(wait)}
`)

// Cluster enforces a limit across every instance sharing a Redis without a
// Redis call on the request path: each instance leases tokens from Redis in
// batches (at most the room the sliding window has left, atomically) and
// spends them from a local counter; a background refill takes the next
// batch when half is spent. The total admitted by all instances in a
// window never exceeds the limit; what can be lost is up to
// Instances x batch tokens leased and not used.
//
// When Redis can't be reached it falls back to local limits (the limit
// divided by Instances), logs that once, and adds what it admitted
// meanwhile to Redis's count at the next successful lease.
type Cluster struct {
	Client    rueidis.Client
	Local     *Limiter
	Timeout   time.Duration
	Instances int
	Log       *slog.Logger

	mu       sync.RWMutex
	keys     map[string]*lease
	fallback outage
}

type lease struct {
	mu        sync.Mutex   // one lease call at a time per key
	tokens    atomic.Int64 // leased, unspent
	expires   atomic.Int64 // monotonic ns: end of the window the tokens belong to
	blocked   atomic.Int64 // monotonic ns: nothing left before this
	refilling atomic.Bool
	offline   atomic.Int64 // admitted locally while Redis was down
	batch     int64
}

// FallbackActive reports whether the last lease attempt failed.
func (c *Cluster) FallbackActive() bool { return c.fallback.active() }

func (c *Cluster) get(key []byte, lim Limit) *lease {
	c.mu.RLock()
	l := c.keys[string(key)]
	c.mu.RUnlock()
	if l != nil {
		return l
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[string]*lease{}
	}
	if l = c.keys[string(key)]; l == nil {
		// A batch of a tenth of each instance's share: refills are rare and
		// leased-but-unused tokens stay few.
		l = &lease{batch: max(int64(lim.Rate)/int64(max(c.Instances, 1))/10, 1)}
		c.keys[string(key)] = l
	}
	return l
}

// Take spends a token of key's limit (lim.Rate per lim.Per across the
// cluster). now is monotonic ns.
func (c *Cluster) Take(key []byte, lim Limit, now int64) Result {
	l := c.get(key, lim)
	for try := 0; try < 2; try++ {
		if now < l.expires.Load() {
			for {
				n := l.tokens.Load()
				if n <= 0 {
					break
				}
				if l.tokens.CompareAndSwap(n, n-1) {
					if n-1 <= l.batch/2 && l.refilling.CompareAndSwap(false, true) {
						// Copied here, on this rare path: letting key
						// itself reach the goroutine would make every
						// caller's key buffer escape to the heap.
						go c.refill(string(key), l, lim)
					}
					return Result{Allowed: true, Limit: lim.Rate, Remaining: int(n - 1), ResetAfter: time.Duration(l.expires.Load() - now)}
				}
			}
		}
		if b := l.blocked.Load(); now < b {
			return Result{Limit: lim.Rate, RetryAfter: time.Duration(b - now), ResetAfter: time.Duration(b - now)}
		}
		// No tokens here: lease now (the first request of a key, or traffic
		// that outran the background refill). On failure, local limits.
		if !c.leaseNow(string(key), l, lim) {
			local := Limit{Rate: max(lim.Rate/max(c.Instances, 1), 1), Per: lim.Per, Burst: max(lim.Rate/max(c.Instances, 1), 1)}
			res := c.Local.Take(append([]byte("cluster-fallback|"), key...), local, now)
			if res.Allowed {
				l.offline.Add(1)
			}
			return res
		}
		now = Now()
	}
	return Result{Limit: lim.Rate, RetryAfter: time.Millisecond}
}

func (c *Cluster) refill(key string, l *lease, lim Limit) {
	defer l.refilling.Store(false)
	c.leaseNow(key, l, lim)
}

// leaseNow asks Redis for a batch. It reports false when Redis failed.
func (c *Cluster) leaseNow(key string, l *lease, lim Limit) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	extra := l.offline.Swap(0)
	vals, err := leaseScript.Exec(ctx, c.Client, []string{"sluice:cl:{" + key + "}"}, []string{
		strconv.FormatInt(lim.Per.Microseconds(), 10), strconv.Itoa(lim.Rate),
		strconv.FormatInt(l.batch, 10), strconv.FormatInt(extra, 10),
	}).AsIntSlice()
	if err != nil || len(vals) != 3 {
		l.offline.Add(extra) // not counted yet: try again next time
		c.fallback.failed(c.Log, "cluster rate limits fall back to local limits", err, "instances", c.Instances)
		return false
	}
	c.fallback.ok(c.Log, "cluster rate limits")
	now := Now()
	windowEnd := now + vals[1]*int64(time.Microsecond)
	if vals[0] > 0 {
		if now >= l.expires.Load() {
			l.tokens.Store(0) // the old window's leftovers are gone
		}
		l.tokens.Add(vals[0])
		l.expires.Store(windowEnd)
		l.blocked.Store(0)
	} else {
		l.blocked.Store(now + vals[2]*int64(time.Microsecond))
	}
	return true
}

var monoEpoch = time.Now()

// Now is the clock the limiters' now arguments are read from: monotonic
// nanoseconds since the process started.
func Now() int64 { return int64(time.Since(monoEpoch)) }
