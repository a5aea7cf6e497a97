package limiter

import (
	"hash/maphash"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Limit is a token bucket: Rate tokens per Per, holding at most Burst.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// interval is the time one token takes to refill (GCRA's emission
// interval), in ns.
// At least 1ns: a rate over 1e9 per second must not divide by zero.
func (l Limit) interval() int64 { return max(int64(l.Per)/int64(max(l.Rate, 1)), 1) }

// Result is the outcome of one Take.
type Result struct {
	Allowed bool
	// Limit is the bucket's capacity (Burst).
	Limit int
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// RetryAfter is how long until one more request is allowed (0 when
	// Allowed).
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
}

// Limiter holds the buckets of many keys under one Limit... or under a
// limit given per call (per-key overrides); see Take.
type Limiter struct {
	shards []shard
	mask   uint64
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*atomic.Int64 // key -> theoretical arrival time (ns)
	_  [40]byte                 // keep shards on separate cache lines
}

// New makes a limiter with at least 4 x GOMAXPROCS shards (a power of two).
func New() *Limiter {
	n := 16
	for n < 4*runtime.GOMAXPROCS(0) {
		n *= 2
	}
	l := &Limiter{shards: make([]shard, n), mask: uint64(n - 1)}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*atomic.Int64)
	}
	return l
}

// shardSeed randomises shard choice per process, so nobody can craft keys
// that all land in one shard.
var shardSeed = maphash.MakeSeed()

func hash(key []byte) uint64 { return maphash.Bytes(shardSeed, key) }

// Take spends one token of key's bucket at now (monotonic ns). key may
// alias a request buffer: it is copied only when a new key is stored.
func (l *Limiter) Take(key []byte, lim Limit, now int64) Result {
	tat := l.state(key)
	t := lim.interval()
	burst := int64(max(lim.Burst, 1))
	// A request fits while the bucket's debt (tat - now) leaves room for
	// one more token within the burst.
	allowance := (burst - 1) * t
	for {
		old := tat.Load()
		start := max(old, now)
		if debt := start - now; debt > allowance {
			return Result{Limit: int(burst), Remaining: 0,
				RetryAfter: time.Duration(debt - allowance), ResetAfter: time.Duration(debt)}
		}
		next := start + t
		if tat.CompareAndSwap(old, next) {
			debt := next - now
			remaining := int((burst*t - debt) / t)
			return Result{Allowed: true, Limit: int(burst), Remaining: max(remaining, 0), ResetAfter: time.Duration(debt)}
		}
	}
}

func (l *Limiter) state(key []byte) *atomic.Int64 {
	s := &l.shards[hash(key)&l.mask]
	s.mu.RLock()
	tat := s.m[string(key)]
	s.mu.RUnlock()
	if tat != nil {
		return tat
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tat = s.m[string(key)]; tat == nil {
		tat = new(atomic.Int64)
		s.m[string(key)] = tat
	}
	return tat
}

// Evict drops keys whose buckets are full again at now (they carry no
// state worth keeping) and returns how many. Run it every few seconds.
func (l *Limiter) Evict(now int64) int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, tat := range s.m {
			if tat.Load() <= now {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Len is the number of keys held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.RLock()
		n += len(l.shards[i].m)
		l.shards[i].mu.RUnlock()
	}
	return n
}

// Seconds rounds a duration up to whole seconds (for Retry-After).
func Seconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }
