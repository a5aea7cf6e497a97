package edge

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

// routeLimit is a route's rate limit, compiled.
type routeLimit struct {
	limit   limiter.Limit
	parts   []keyPart
	shadow  bool
	strict  bool
	cluster bool
	// Precomputed header values.
	limitValue  []byte // X-RateLimit-Limit
	policyValue []byte // RateLimit-Policy: "route";q=100;w=1
	namePrefix  []byte // `"route";r=`
	shadowed    atomic.Int64
	shadowLogAt atomic.Int64
}

type keyPart struct {
	kind string // ip, api_key, user, route, header, claim
	name []byte
}

func compileLimit(route string, rl *config.RateLimit) *routeLimit {
	if rl == nil {
		return nil
	}
	l := &routeLimit{
		limit:   limiter.Limit{Rate: rl.Rate, Per: rl.Per.D(), Burst: rl.Burst},
		shadow:  rl.Shadow,
		strict:  rl.Scope == "strict",
		cluster: rl.Scope == "cluster",
	}
	for _, k := range rl.Key {
		kind, name, _ := strings.Cut(k, ":")
		l.parts = append(l.parts, keyPart{kind: kind, name: []byte(name)})
	}
	l.limitValue = []byte(strconv.Itoa(rl.Burst))
	window := max(int64(rl.Per.D()/time.Second), 1)
	l.policyValue = []byte(strconv.Quote(route) + ";q=" + strconv.Itoa(rl.Rate) + ";w=" + strconv.FormatInt(window, 10))
	l.namePrefix = []byte(strconv.Quote(route) + ";r=")
	return l
}

// limitClaims lists the JWT claims rate-limit keys read, so the verifier
// keeps their values.
func limitClaims(cfg *config.Config) []string {
	var out []string
	add := func(rl *config.RateLimit) {
		if rl == nil {
			return
		}
		for _, k := range rl.Key {
			if name, ok := strings.CutPrefix(k, "claim:"); ok {
				out = append(out, name)
			}
		}
	}
	add(cfg.Limits.Default)
	for _, r := range cfg.Routes {
		add(r.RateLimit)
		if r.Quota != nil {
			add(&config.RateLimit{Key: r.Quota.Key})
		}
	}
	return out
}

var (
	headerXRLLimit     = []byte("X-RateLimit-Limit")
	headerXRLRemaining = []byte("X-RateLimit-Remaining")
	headerXRLReset     = []byte("X-RateLimit-Reset")
	headerRLPolicy     = []byte("RateLimit-Policy")
	headerRL           = []byte("RateLimit")
	headerRetryAfter   = []byte("Retry-After")
	faultRateLimited   = &Fault{fasthttp.StatusTooManyRequests, "rate limit exceeded", FromClient}
)

// limitStep takes a token from the caller's bucket: 429 with Retry-After
// when there is none (unless shadow), and the rate-limit headers on every
// answer. An API key's own rate_limit replaces the route's.
func (s *Snapshot) limitStep(rt *Route) Middleware {
	rl := rt.limit
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			var buf [320]byte
			key := s.limitKey(ctx, rt, rl, buf[:0])
			lim := rl.limit
			if rec, ok := ctx.UserValue(userValueAPIKey).(*auth.KeyRecord); ok && rec.RateLimit > 0 {
				lim = limiter.Limit{Rate: rec.RateLimit, Per: time.Second, Burst: rec.RateLimit}
			}
			var res limiter.Result
			switch {
			case rl.strict:
				res = s.strict.Take(key, lim, limiter.Now())
			case rl.cluster:
				res = s.cluster.Take(key, lim, limiter.Now())
			default:
				res = s.limiter.Take(key, lim, limiter.Now())
			}
			if !res.Allowed {
				rt.metrics.RateLimit()
				if !rl.shadow {
					writeFault(ctx, faultRateLimited, ctx.Request.Header.PeekBytes(headerRequestID))
					setLimitHeaders(&ctx.Response.Header, rl, lim, res)
					var n [20]byte
					ctx.Response.Header.SetBytesKV(headerRetryAfter, strconv.AppendInt(n[:0], max(limiter.Seconds(res.RetryAfter), 1), 10))
					return
				}
				s.noteShadowed(rt, rl)
			}
			next(ctx)
			setLimitHeaders(&ctx.Response.Header, rl, lim, res)
		}
	}
}

func (s *Snapshot) noteShadowed(rt *Route, rl *routeLimit) {
	n := rl.shadowed.Add(1)
	now := time.Now().UnixNano()
	if last := rl.shadowLogAt.Load(); now-last > int64(time.Second) && rl.shadowLogAt.CompareAndSwap(last, now) {
		s.log.Info("rate limit (shadow): would have refused", "route", rt.Name, "shadowed_total", n)
	}
}

func setLimitHeaders(h *fasthttp.ResponseHeader, rl *routeLimit, lim limiter.Limit, res limiter.Result) {
	var n [64]byte
	if lim.Burst == rl.limit.Burst {
		h.SetBytesKV(headerXRLLimit, rl.limitValue)
	} else {
		h.SetBytesKV(headerXRLLimit, strconv.AppendInt(n[:0], int64(lim.Burst), 10))
	}
	h.SetBytesKV(headerXRLRemaining, strconv.AppendInt(n[:0], int64(res.Remaining), 10))
	reset := time.Now().Unix() + limiter.Seconds(res.ResetAfter)
	h.SetBytesKV(headerXRLReset, strconv.AppendInt(n[:0], reset, 10))
	h.SetBytesKV(headerRLPolicy, rl.policyValue)
	// RateLimit: "route";r=REMAINING;t=SECONDS (draft-ietf-httpapi-ratelimit-headers)
	b := append(n[:0], rl.namePrefix...)
	b = strconv.AppendInt(b, int64(res.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, limiter.Seconds(res.ResetAfter), 10)
	h.SetBytesKV(headerRL, b)
}

// limitKey builds the bucket key: the route name, then each key part.
func (s *Snapshot) limitKey(ctx *fasthttp.RequestCtx, rt *Route, rl *routeLimit, dst []byte) []byte {
	dst = append(dst, rt.Name...)
	return s.appendKeyParts(ctx, rl.parts, dst, true)
}

// appendKeyParts appends each part's value, '|' before each (after the
// first too when sep).
func (s *Snapshot) appendKeyParts(ctx *fasthttp.RequestCtx, parts []keyPart, dst []byte, sep bool) []byte {
	for i, p := range parts {
		if sep || i > 0 {
			dst = append(dst, '|')
		}
		switch p.kind {
		case "ip":
			dst = s.clientIP(ctx, dst)
		case "api_key", "user":
			if rec, ok := ctx.UserValue(userValueAPIKey).(*auth.KeyRecord); ok {
				dst = append(dst, rec.ID...)
			} else if id, ok := ctx.UserValue(userValueIdentity).(*auth.Identity); ok && p.kind == "user" {
				dst = append(dst, id.Subject...)
			} else {
				// Not authenticated that way: the client address stands in.
				dst = s.clientIP(ctx, dst)
			}
		case "header":
			dst = append(dst, ctx.Request.Header.PeekBytes(p.name)...)
		case "claim":
			if id, ok := ctx.UserValue(userValueIdentity).(*auth.Identity); ok {
				dst = append(dst, id.Claims[string(p.name)]...)
			}
		case "route":
			// the route name: already the prefix of rate-limit keys
		}
	}
	return dst
}
