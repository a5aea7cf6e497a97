package limiter

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Quotas count requests per key over a long period (an hour, a day) with a
// sliding window: the estimate is the previous fixed window's count,
// weighted by how much of it still overlaps the sliding window, plus the
// current window's count. Unlike a fixed window it can't admit twice the
// quota around a window boundary; unlike a log of timestamps it needs two
// counters per key.
type Quotas interface {
	// Take counts one request for key if it fits within limit per period.
	Take(key string, limit int, per time.Duration) (QuotaResult, error)
	// Usage reports key's counters.
	Usage(key string) (QuotaUsage, error)
	// Reset forgets key's counters.
	Reset(key string) error
	// List returns one page of at most about limit keys with their usage,
	// starting at cursor ("" for the first page), and the cursor of the
	// next page ("" when this was the last). Keys whose windows have both
	// expired (nothing counted in this window or the previous one) are not
	// listed. A page may be short, even empty, while next is not "": the
	// caller goes on until next is "".
	List(cursor string, limit int) (page []QuotaUsage, next string, err error)
}

// QuotaResult is the outcome of one Take.
type QuotaResult struct {
	Allowed   bool
	Limit     int
	Remaining int
	// ResetAfter is when the current fixed window ends (the estimate then
	// drops by the previous window's share).
	ResetAfter time.Duration
}

// QuotaUsage is a key's state, for the admin API.
type QuotaUsage struct {
	Key         string    `json:"key"`
	Per         string    `json:"per"`
	Used        int       `json:"used"` // sliding-window estimate now
	Current     int       `json:"current_window"`
	Previous    int       `json:"previous_window"`
	WindowStart time.Time `json:"window_start"`
}

// ErrNoQuota: the key has no counters (never used, or reset).
var ErrNoQuota = errors.New("limiter: no quota usage for this key")

// ErrBadCursor: a List cursor this store did not hand out.
var ErrBadCursor = errors.New("limiter: bad quota list cursor")

// usageAt is a key's usage at now (unix ns) from counters last rolled to
// window sw of period per (ns); ok is false when both windows have
// expired (nothing left to show).
func usageAt(key string, sw, c, p, per, now int64) (u QuotaUsage, ok bool) {
	w, offset := now/per, now%per
	c, p = slide(sw, c, p, w)
	return QuotaUsage{Key: key, Per: time.Duration(per).String(), Used: int(math.Ceil(estimate(c, p, offset, per))),
		Current: int(c), Previous: int(p), WindowStart: time.Unix(0, w*per).UTC()}, c != 0 || p != 0
}

// window math shared by both stores: roll the counters to window w and
// return the sliding estimate at offset (ns into w) of a period per.
func slide(stateW, c, p, w int64) (int64, int64) {
	switch {
	case stateW == w-1:
		return 0, c
	case stateW < w-1:
		return 0, 0
	}
	return c, p
}

func estimate(c, p, offset, per int64) float64 {
	return float64(p)*float64(per-offset)/float64(per) + float64(c)
}

// LocalQuotas keeps quota counters in memory and saves them to a file
// every few seconds and on Close, so a restart doesn't hand every client a
// fresh daily quota. (Counts taken in the last seconds before a crash can
// be lost: quotas are soft state, and that is the documented bound.)
type LocalQuotas struct {
	path  string
	mu    sync.Mutex
	m     map[string]*quotaState
	dirty atomic.Bool
	// held stops saving (Hold) until MergeSaved; base is the file as
	// loaded, to tell what another process counted since.
	held atomic.Bool
	base map[string]quotaState
	stop chan struct{}
	done chan struct{}
	log  *slog.Logger
}

type quotaState struct {
	W   int64 `json:"w"`   // window index (unix ns / per)
	C   int64 `json:"c"`   // count in window W
	P   int64 `json:"p"`   // count in window W-1
	Per int64 `json:"per"` // ns
}

// OpenLocalQuotas loads path (if it exists) and saves to it every interval
// until Close. path "" keeps counts in memory only.
func OpenLocalQuotas(path string, interval time.Duration, log *slog.Logger) (*LocalQuotas, error) {
	q := &LocalQuotas{path: path, m: map[string]*quotaState{}, stop: make(chan struct{}), done: make(chan struct{}), log: log}
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("quota store %s: %w", path, err)
		default:
			if err := json.Unmarshal(data, &q.m); err != nil {
				return nil, fmt.Errorf("quota store %s: %w", path, err)
			}
		}
	}
	go q.saveLoop(interval)
	return q, nil
}

// Hold stops saving until MergeSaved, Close included: a process started
// by an upgrade counts alongside its parent, which still saves to the
// same file; the parent's counts must not be overwritten. Called before
// the first Take: what is held now is the state as loaded.
func (q *LocalQuotas) Hold() {
	if q.path == "" {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.base = make(map[string]quotaState, len(q.m))
	for k, st := range q.m {
		q.base[k] = *st
	}
	q.held.Store(true)
}

// MergeSaved re-reads the file (saved by the parent as it exited) and
// adds to this store's counts what was counted there since this store
// loaded it, per key and window; then saving resumes. Counts are added,
// not maxed: both processes counted distinct requests on top of the same
// loaded state.
func (q *LocalQuotas) MergeSaved() error {
	if q.path == "" || !q.held.Load() {
		return nil
	}
	defer q.held.Store(false)
	data, err := os.ReadFile(q.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("quota store %s: %w", q.path, err)
	}
	var saved map[string]quotaState
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("quota store %s: %w", q.path, err)
	}
	now := time.Now().UnixNano()
	q.mu.Lock()
	defer q.mu.Unlock()
	for key, o := range saved {
		if o.Per <= 0 {
			continue
		}
		w := now / o.Per
		oc, op := slide(o.W, o.C, o.P, w)
		var bc, bp int64
		if b, ok := q.base[key]; ok && b.Per == o.Per {
			bc, bp = slide(b.W, b.C, b.P, w)
		}
		n := q.m[key]
		switch {
		case n == nil:
			n = &quotaState{W: w, Per: o.Per}
			q.m[key] = n
		case n.Per != o.Per:
			continue // the route's period changed: this process's count stands
		default:
			n.C, n.P = slide(n.W, n.C, n.P, w)
			n.W = w
		}
		n.C += max(oc-bc, 0)
		n.P += max(op-bp, 0)
	}
	q.base = nil
	q.dirty.Store(true)
	return nil
}

func (q *LocalQuotas) saveLoop(interval time.Duration) {
	defer close(q.done)
	if q.path == "" {
		<-q.stop
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			q.save()
			return
		case <-t.C:
			q.save()
		}
	}
}

func (q *LocalQuotas) save() {
	if q.held.Load() || !q.dirty.Swap(false) {
		return
	}
	q.mu.Lock()
	data, err := json.Marshal(q.m)
	q.mu.Unlock()
	if err == nil {
		err = writeAtomic(q.path, data)
	}
	if err != nil {
		q.dirty.Store(true)
		q.log.Warn("quota store: save failed", "path", q.path, "error", err.Error())
	}
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".quotas-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Close saves the counters and stops saving.
func (q *LocalQuotas) Close() {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	<-q.done
}

// Take counts a request if it fits.
func (q *LocalQuotas) Take(key string, limit int, per time.Duration) (QuotaResult, error) {
	now := time.Now().UnixNano()
	p := int64(per)
	w, offset := now/p, now%p
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.m[key]
	if st == nil || st.Per != p {
		st = &quotaState{W: w, Per: p}
		q.m[key] = st
	}
	st.C, st.P = slide(st.W, st.C, st.P, w)
	st.W = w
	est := estimate(st.C, st.P, offset, p)
	res := QuotaResult{Limit: limit, ResetAfter: time.Duration(p - offset)}
	if est+1 > float64(limit) {
		return res, nil
	}
	st.C++
	q.dirty.Store(true)
	res.Allowed = true
	res.Remaining = max(limit-int(math.Ceil(est))-1, 0)
	return res, nil
}

// Usage reports a key's counters.
func (q *LocalQuotas) Usage(key string) (QuotaUsage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.m[key]
	if st == nil {
		return QuotaUsage{}, ErrNoQuota
	}
	u, _ := usageAt(key, st.W, st.C, st.P, st.Per, time.Now().UnixNano())
	return u, nil
}

// localCursor starts a LocalQuotas cursor: what follows is the last key
// of the previous page. (The key alone could not tell "after the empty
// key", a key a header-keyed quota counts when the header is missing,
// from "from the start".)
const localCursor = "after:"

// List pages through the keys in byte order: the cursor is "after:" and
// the last key of the previous page. It scans the whole map under the lock Take waits on,
// so the scan keeps only the limit+1 smallest keys after the cursor in a
// heap (no allocation per key, memory bounded by limit) and builds the
// page after letting go of the lock.
func (q *LocalQuotas) List(cursor string, limit int) ([]QuotaUsage, string, error) {
	limit = max(limit, 1)
	from, after := strings.CutPrefix(cursor, localCursor)
	if cursor != "" && !after {
		return nil, "", ErrBadCursor
	}
	now := time.Now().UnixNano()
	q.mu.Lock()
	h := make(keyHeap, 0, min(limit+1, len(q.m)))
	for k, st := range q.m {
		if after && k <= from || st.Per <= 0 || len(h) > limit && k >= h[0].key {
			continue
		}
		if c, p := slide(st.W, st.C, st.P, now/st.Per); c == 0 && p == 0 {
			continue // both windows expired
		}
		if len(h) > limit {
			h[0] = listEntry{k, *st}
			heap.Fix(&h, 0)
		} else {
			heap.Push(&h, listEntry{k, *st})
		}
	}
	q.mu.Unlock()
	slices.SortFunc(h, func(a, b listEntry) int { return strings.Compare(a.key, b.key) })
	next := ""
	if len(h) > limit {
		h, next = h[:limit], localCursor+h[limit-1].key
	}
	page := make([]QuotaUsage, len(h))
	for i, e := range h {
		page[i], _ = usageAt(e.key, e.st.W, e.st.C, e.st.P, e.st.Per, now)
	}
	return page, next, nil
}

// listEntry is a key and a copy of its counters, taken under the lock.
type listEntry struct {
	key string
	st  quotaState
}

// keyHeap is a max-heap of keys (container/heap): its top is the
// largest key kept, the first to drop for a smaller one.
type keyHeap []listEntry

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].key > h[j].key }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(listEntry)) }
func (h *keyHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Reset forgets a key.
func (q *LocalQuotas) Reset(key string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m[key] == nil {
		return ErrNoQuota
	}
	delete(q.m, key)
	q.dirty.Store(true)
	return nil
}

// slidingWindowLua starts every sliding-window script (quotas, cluster
// leases): it reads Redis's clock and the counters of KEYS[1] (a hash of
// w, c, p, per) for a period of ARGV[1] us and a limit of ARGV[2], and
// rolls them to the current window exactly as slide does in Go. It leaves
// now, per, limit, w, offset, c (this window) and p (the previous one).
const slidingWindowLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local per = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local w = math.floor(now / per)
local offset = now - w * per
local s = redis.call('HMGET', KEYS[1], 'w', 'c', 'p', 'per')
local sw, c, p = tonumber(s[1]) or w, tonumber(s[2]) or 0, tonumber(s[3]) or 0
if tonumber(s[4]) ~= per then sw, c, p = w, 0, 0 end
if sw == w - 1 then p = c; c = 0 elseif sw < w - 1 then p = 0; c = 0 end
`

// quotaScript is the same sliding window run atomically in Redis on
// Redis's clock. KEYS[1]: the counters (a hash: w, c, p, per);
// ARGV[1]: period (us); ARGV[2]: limit. Returns {allowed, remaining,
// reset_us}.
var quotaScript = rueidis.NewLuaScript(slidingWindowLua + `
local est = p * (per - offset) / per + c
if est + 1 > limit then
  redis.call('HSET', KEYS[1], 'w', w, 'c', c, 'p', p, 'per', per)
  return {0, 0, per - offset}
end
c = c + 1
redis.call('HSET', KEYS[1], 'w', w, 'c', c, 'p', p, 'per', per)
redis.call('PEXPIRE', KEYS[1], math.floor(2 * per / 1000) + 1000)
return {1, math.max(limit - math.ceil(est) - 1, 0), per - offset}
`)

// RedisQuotas keeps quota counters in Redis, shared by every instance
// (hash-tagged keys "sluice:quota:{key}"). When Redis fails it counts in
// Fallback (local) and logs that once per outage.
type RedisQuotas struct {
	Client   rueidis.Client
	Timeout  time.Duration
	Fallback *LocalQuotas
	Log      *slog.Logger
	down     outage
}

const redisQuotaPrefix = "sluice:quota:{"

func redisQuotaKey(key string) string { return redisQuotaPrefix + key + "}" }

// Take counts a request if it fits.
func (q *RedisQuotas) Take(key string, limit int, per time.Duration) (QuotaResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), q.Timeout)
	defer cancel()
	vals, err := quotaScript.Exec(ctx, q.Client, []string{redisQuotaKey(key)},
		[]string{strconv.FormatInt(per.Microseconds(), 10), strconv.Itoa(limit)}).AsIntSlice()
	if err != nil || len(vals) != 3 {
		q.down.failed(q.Log, "quotas count locally", err)
		return q.Fallback.Take(key, limit, per)
	}
	q.down.ok(q.Log, "quotas")
	return QuotaResult{Allowed: vals[0] == 1, Limit: limit, Remaining: int(vals[1]), ResetAfter: time.Duration(vals[2]) * time.Microsecond}, nil
}

// Usage reports a key's counters.
func (q *RedisQuotas) Usage(key string) (QuotaUsage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := q.Client.Do(ctx, q.Client.B().Hgetall().Key(redisQuotaKey(key)).Build()).AsIntMap()
	if err != nil {
		return QuotaUsage{}, err
	}
	if len(m) == 0 {
		return QuotaUsage{}, ErrNoQuota
	}
	u, _ := usageAt(key, m["w"], m["c"], m["p"], m["per"]*1000, time.Now().UnixNano()) // per: us -> ns
	return u, nil
}

// Reset forgets a key.
func (q *RedisQuotas) Reset(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := q.Client.Do(ctx, q.Client.B().Del().Key(redisQuotaKey(key)).Build()).AsInt64()
	if err != nil {
		return err
	}
	_ = q.Fallback.Reset(key)
	if n == 0 {
		return ErrNoQuota
	}
	return nil
}

var (
	_ Quotas = (*LocalQuotas)(nil)
	_ Quotas = (*RedisQuotas)(nil)
)
