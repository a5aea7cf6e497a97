package edge

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

// taker is a rate limiter: the local token buckets, or the cluster or
// strict scopes over Redis (limiter.Limiter, .Cluster, .Strict). Which one
// a route uses is chosen when the snapshot is built.
type taker interface {
	Take(key []byte, lim limiter.Limit, now int64) limiter.Result
}

var (
	_ taker = (*limiter.Limiter)(nil)
	_ taker = (*limiter.Cluster)(nil)
	_ taker = (*limiter.Strict)(nil)
)

// rateLimit is a route's rate-limit step: a token from the caller's bucket,
// 429 with Retry-After when there is none (unless shadow), and the
// rate-limit headers on every answer. An API key's own rate_limit replaces
// the route's.
type rateLimit struct {
	rt     *route
	taker  taker
	limit  limiter.Limit
	parts  []keyPart
	shadow bool
	s      *Snapshot
	// Precomputed header values.
	limitValue  []byte // X-RateLimit-Limit
	policyValue []byte // RateLimit-Policy: "route";q=100;w=1
	namePrefix  []byte // `"route";r=`
	shadowed    atomic.Int64
	shadowLogAt atomic.Int64
}

var _ step = (*rateLimit)(nil)

func (s *Snapshot) rateLimitStep(rt *route, rl *config.RateLimit) *rateLimit {
	l := &rateLimit{
		rt:     rt,
		s:      s,
		limit:  limiter.Limit{Rate: rl.Rate, Per: rl.Per.D(), Burst: rl.Burst},
		shadow: rl.Shadow,
		parts:  compileKey(rl.Key),
		taker:  s.res.limiter,
	}
	// Validation requires a redis block for the shared scopes.
	switch {
	case rl.Scope == "strict" && s.res.strict != nil:
		l.taker = s.res.strict
	case rl.Scope == "cluster" && s.res.cluster != nil:
		l.taker = s.res.cluster
	}
	l.limitValue = []byte(strconv.Itoa(rl.Burst))
	window := max(int64(rl.Per.D()/time.Second), 1)
	l.policyValue = []byte(strconv.Quote(rt.name) + ";q=" + strconv.Itoa(rl.Rate) + ";w=" + strconv.FormatInt(window, 10))
	l.namePrefix = []byte(strconv.Quote(rt.name) + ";r=")
	return l
}

// The answer's rate-limit headers, in fasthttp's canonical form (as
// written on the wire): set with SetCanonical, which skips the key
// normalisation five times per rate-limited request.
var (
	headerXRLLimit     = []byte("X-Ratelimit-Limit")
	headerXRLRemaining = []byte("X-Ratelimit-Remaining")
	headerXRLReset     = []byte("X-Ratelimit-Reset")
	headerRLPolicy     = []byte("Ratelimit-Policy")
	headerRL           = []byte("Ratelimit")
	headerRetryAfter   = []byte("Retry-After")
	faultRateLimited   = &fault{fasthttp.StatusTooManyRequests, "rate limit exceeded"}
)

func (rl *rateLimit) serve(x *exchange) {
	// The bucket key: the route name, then each key part.
	key := appendKey(append(x.keyBuf[:0], rl.rt.name...), x, rl.parts, true)
	lim := rl.limit
	if x.apiKey != nil && x.apiKey.RateLimit > 0 {
		lim = limiter.Limit{Rate: x.apiKey.RateLimit, Per: time.Second, Burst: x.apiKey.RateLimit}
	}
	res := rl.taker.Take(key, lim, limiter.Now())
	if !res.Allowed {
		rl.rt.metrics.RateLimit()
		if !rl.shadow {
			x.fail(faultRateLimited)
			rl.setHeaders(&x.ctx.Response.Header, lim, res)
			setRetryAfter(&x.ctx.Response.Header, res.RetryAfter)
			return
		}
		rl.noteShadowed()
	}
	x.next()
	rl.setHeaders(&x.ctx.Response.Header, lim, res)
}

func (rl *rateLimit) noteShadowed() {
	n := rl.shadowed.Add(1)
	now := time.Now().UnixNano()
	if last := rl.shadowLogAt.Load(); now-last > int64(time.Second) && rl.shadowLogAt.CompareAndSwap(last, now) {
		rl.s.log.Info("rate limit (shadow): would have refused", "route", rl.rt.name, "shadowed_total", n)
	}
}

func (rl *rateLimit) setHeaders(h *fasthttp.ResponseHeader, lim limiter.Limit, res limiter.Result) {
	var n [64]byte
	if lim.Burst == rl.limit.Burst {
		h.SetCanonical(headerXRLLimit, rl.limitValue)
	} else {
		h.SetCanonical(headerXRLLimit, strconv.AppendInt(n[:0], int64(lim.Burst), 10))
	}
	h.SetCanonical(headerXRLRemaining, strconv.AppendInt(n[:0], int64(res.Remaining), 10))
	reset := time.Now().Unix() + limiter.Seconds(res.ResetAfter)
	h.SetCanonical(headerXRLReset, strconv.AppendInt(n[:0], reset, 10))
	h.SetCanonical(headerRLPolicy, rl.policyValue)
	// RateLimit: "route";r=REMAINING;t=SECONDS (draft-ietf-httpapi-ratelimit-headers)
	b := append(n[:0], rl.namePrefix...)
	b = strconv.AppendInt(b, int64(res.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, limiter.Seconds(res.ResetAfter), 10)
	h.SetCanonical(headerRL, b)
}

// setRetryAfter sets Retry-After in whole seconds, at least 1.
func setRetryAfter(h *fasthttp.ResponseHeader, after time.Duration) {
	var n [20]byte
	h.SetBytesKV(headerRetryAfter, strconv.AppendInt(n[:0], max(limiter.Seconds(after), 1), 10))
}

// limitClaims lists the JWT claims rate-limit and quota keys read, so the
// verifier keeps their values.
func limitClaims(cfg *config.Config) []string {
	var out []string
	add := func(key []string) {
		for _, k := range key {
			if name, ok := strings.CutPrefix(k, "claim:"); ok {
				out = append(out, name)
			}
		}
	}
	if cfg.Limits.Default != nil {
		add(cfg.Limits.Default.Key)
	}
	for _, r := range cfg.Routes {
		if r.RateLimit != nil {
			add(r.RateLimit.Key)
		}
		if r.Quota != nil {
			add(r.Quota.Key)
		}
	}
	return out
}
