package edge

import (
	"strconv"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

// routeQuota is a route's quota, compiled.
type routeQuota struct {
	limit      int
	per        time.Duration
	parts      []keyPart
	limitValue []byte
	byRoute    bool // key includes the route name
	route      string
}

func compileQuota(route string, q *config.Quota) *routeQuota {
	if q == nil {
		return nil
	}
	rq := &routeQuota{limit: q.Limit, per: q.Per.D(), limitValue: []byte(strconv.Itoa(q.Limit)), route: route}
	for _, k := range q.Key {
		kind, name, _ := strings.Cut(k, ":")
		if kind == "route" {
			rq.byRoute = true // contributes the route name, not a value
			continue
		}
		rq.parts = append(rq.parts, keyPart{kind: kind, name: []byte(name)})
	}
	return rq
}

var (
	headerQuotaLimit     = []byte("X-Quota-Limit")
	headerQuotaRemaining = []byte("X-Quota-Remaining")
	headerQuotaReset     = []byte("X-Quota-Reset")
	faultQuota           = &Fault{fasthttp.StatusTooManyRequests, "quota exceeded", FromClient}
)

// QuotaKey is how a quota key is stored: the key parts' values joined by
// '|' (with the route name first when a part is "route"). The admin API
// takes this string: for key: api_key it is the API key's id.
func (s *Snapshot) quotaKey(ctx *fasthttp.RequestCtx, q *routeQuota) string {
	var buf [320]byte
	dst := buf[:0]
	if q.byRoute {
		dst = append(dst, q.route...)
		dst = append(dst, '|')
	}
	return string(s.appendKeyParts(ctx, q.parts, dst, false))
}

// quotaStep counts the request against the caller's quota: 429 quota
// exceeded when it is spent. An API key's own quota (per day) replaces the
// route's. The store (Redis, or the local file) is the gateway's.
func (s *Snapshot) quotaStep(rt *Route) Middleware {
	q := rt.quota
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			limit, per, limitValue := q.limit, q.per, q.limitValue
			if rec, ok := ctx.UserValue(userValueAPIKey).(*auth.KeyRecord); ok && rec.Quota > 0 {
				limit, per, limitValue = rec.Quota, 24*time.Hour, nil
			}
			res, err := s.quotas.Take(s.quotaKey(ctx, q), limit, per)
			if err != nil {
				s.log.Warn("quota store failed; request let through", "route", rt.Name, "error", err.Error())
				next(ctx)
				return
			}
			if !res.Allowed {
				rt.metrics.Quota()
				writeFault(ctx, faultQuota, ctx.Request.Header.PeekBytes(headerRequestID))
				setQuotaHeaders(&ctx.Response.Header, limitValue, res)
				var n [20]byte
				ctx.Response.Header.SetBytesKV(headerRetryAfter, strconv.AppendInt(n[:0], max(limiter.Seconds(res.ResetAfter), 1), 10))
				return
			}
			next(ctx)
			setQuotaHeaders(&ctx.Response.Header, limitValue, res)
		}
	}
}

func setQuotaHeaders(h *fasthttp.ResponseHeader, limitValue []byte, res limiter.QuotaResult) {
	var n [24]byte
	if limitValue == nil {
		limitValue = strconv.AppendInt(n[:0], int64(res.Limit), 10)
	}
	h.SetBytesKV(headerQuotaLimit, limitValue)
	h.SetBytesKV(headerQuotaRemaining, strconv.AppendInt(n[:0], int64(res.Remaining), 10))
	h.SetBytesKV(headerQuotaReset, strconv.AppendInt(n[:0], time.Now().Unix()+limiter.Seconds(res.ResetAfter), 10))
}
