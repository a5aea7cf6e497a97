package admin

import (
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// failureLimiter slows credential guessing on every check the admin
// listener makes: Basic, Bearer and the console's login. Per client (an
// IPv4 address, or an IPv6 /64, which one host usually holds whole):
// after freeFailures failures each further one locks the client out for
// twice as long as the last (1 s, 2 s, 4 s ... up to maxLockout), and a
// right credential is refused while locked, so a guess that happens to
// be right tells nothing. Across all clients, a failure budget (a token
// bucket of globalFailures refilled over globalWindow) bounds guesses
// from many addresses at once; while it is spent every credential check
// waits, except from clients whose credentials were right within
// forgetAfter (a Prometheus scraping /metrics, the operator's console):
// a distributed guesser can't lock them out or blind the monitoring. An attempt is counted when it starts (begin), not when it
// fails, so parallel guesses can't slip past the count while the first
// ones are still being checked.
type failureLimiter struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*clientFailures

	tokens  float64 // global failures still allowed
	refill  time.Time
	pending int // attempts in flight, all clients
}

type clientFailures struct {
	n           int // failures since the last success
	pending     int // attempts begun, not yet ended
	lockedUntil time.Time
	last        time.Time
	goodUntil   time.Time // a right credential came from here: the global budget doesn't apply
}

const (
	freeFailures   = 5
	maxLockout     = 5 * time.Minute
	forgetAfter    = 15 * time.Minute
	maxClients     = 10000
	globalFailures = 100
	globalWindow   = time.Minute
)

func newFailureLimiter() *failureLimiter {
	return &failureLimiter{now: time.Now, m: map[string]*clientFailures{}, tokens: globalFailures}
}

// clientKey names the client a failure is held against: its IPv4
// address, or the /64 of an IPv6 one.
func clientKey(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// begin asks whether the client may try a credential now. 0: yes, and
// the attempt is counted until end is called; otherwise how long to wait.
func (l *failureLimiter) begin(key string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refillLocked(now)
	f := l.m[key]
	if f != nil && f.pending == 0 && now.Sub(f.last) > forgetAfter {
		f.n, f.lockedUntil = 0, time.Time{}
	}
	if f != nil {
		if d := f.lockedUntil.Sub(now); d > 0 {
			return d
		}
		// Attempts in flight count as failures until they end: at most
		// freeFailures at once, and one at a time once past them.
		if f.pending > 0 && f.n+f.pending >= freeFailures {
			return time.Second
		}
	}
	if (f == nil || !now.Before(f.goodUntil)) && l.tokens-float64(l.pending) < 1 {
		return time.Duration((1 - (l.tokens - float64(l.pending))) * float64(globalWindow) / globalFailures)
	}
	if f == nil {
		l.evictLocked(now)
		f = &clientFailures{}
		l.m[key] = f
	}
	f.pending++
	f.last = now
	l.pending++
	return 0
}

// end closes an attempt begin allowed: a success clears the client's
// record, a failure counts and may lock it out.
func (l *failureLimiter) end(key string, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending--
	f := l.m[key]
	if f == nil {
		return
	}
	f.pending--
	if ok {
		f.n, f.lockedUntil, f.goodUntil, f.last = 0, time.Time{}, now.Add(forgetAfter), now
		return
	}
	l.refillLocked(now)
	l.tokens--
	f.n++
	f.last = now
	if over := f.n - freeFailures; over > 0 {
		lock := time.Duration(math.Min(float64(time.Second)*math.Pow(2, float64(over-1)), float64(maxLockout)))
		f.lockedUntil = now.Add(lock)
	}
}

func (l *failureLimiter) refillLocked(now time.Time) {
	if !l.refill.IsZero() && now.After(l.refill) {
		l.tokens = math.Min(globalFailures, l.tokens+float64(now.Sub(l.refill))*globalFailures/float64(globalWindow))
	}
	l.refill = now
}

// evictLocked makes room for a new client: records idle past forgetAfter
// go first, then the longest idle ones that hold no lockout and no
// attempt in flight, so a flood of fresh addresses can't wipe a lockout.
func (l *failureLimiter) evictLocked(now time.Time) {
	if len(l.m) < maxClients {
		return
	}
	for k, v := range l.m {
		if v.pending == 0 && now.Sub(v.last) > forgetAfter {
			delete(l.m, k)
		}
	}
	for len(l.m) >= maxClients {
		var oldest string
		for k, v := range l.m {
			if v.pending == 0 && !v.lockedUntil.After(now) && (oldest == "" || v.last.Before(l.m[oldest].last)) {
				oldest = k
			}
		}
		if oldest == "" { // all locked or busy: the new client is counted by the global budget alone
			return
		}
		delete(l.m, oldest)
	}
}

// tooManyFailures answers a client that must wait: 429 with Retry-After
// (RFC 6585 section 4) in whole seconds, at least 1.
func tooManyFailures(ctx *fasthttp.RequestCtx, d time.Duration) {
	secs := max(int((d+time.Second-1)/time.Second), 1)
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
	writeJSON(ctx, fasthttp.StatusTooManyRequests, map[string]string{
		"error": "too many failed credential checks: try again in " + strconv.Itoa(secs) + "s"})
}
