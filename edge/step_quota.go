package edge

import (
	"strconv"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

// quota is a route's quota step: it counts the request against the
// caller's quota, 429 quota exceeded when it is spent. An API key's own
// quota (per day) replaces the route's. The store (Redis, or the local
// file) is the gateway's.
type quota struct {
	rt         *route
	store      limiter.Quotas
	limit      int
	per        time.Duration
	parts      []keyPart
	byRoute    bool // the key starts with the route name
	limitValue []byte
	s          *Snapshot
}

var _ step = (*quota)(nil)

func (s *Snapshot) quotaStep(rt *route, q *config.Quota) *quota {
	st := &quota{rt: rt, s: s, store: s.res.quotas, limit: q.Limit, per: q.Per.D(), limitValue: []byte(strconv.Itoa(q.Limit))}
	st.parts, st.byRoute = withoutRoute(compileKey(q.Key))
	return st
}

var (
	headerQuotaLimit     = []byte("X-Quota-Limit")
	headerQuotaRemaining = []byte("X-Quota-Remaining")
	headerQuotaReset     = []byte("X-Quota-Reset")
	faultQuota           = &fault{fasthttp.StatusTooManyRequests, "quota exceeded"}
)

// key is how a quota key is stored: the key parts' values joined by '|'
// (with the route name first when a part is "route"). The admin API takes
// this string: for key: api_key it is the API key's id.
func (q *quota) key(x *exchange) string {
	dst := x.keyBuf[:0]
	if q.byRoute {
		dst = append(dst, q.rt.name...)
		dst = append(dst, '|')
	}
	return string(appendKey(dst, x, q.parts, false))
}

func (q *quota) serve(x *exchange) {
	limit, per, limitValue := q.limit, q.per, q.limitValue
	if x.apiKey != nil && x.apiKey.Quota > 0 {
		limit, per, limitValue = x.apiKey.Quota, 24*time.Hour, nil
	}
	res, err := q.store.Take(q.key(x), limit, per)
	if err != nil {
		q.s.log.Warn("quota store failed; request let through", "route", q.rt.name, "error", err.Error())
		x.next()
		return
	}
	if !res.Allowed {
		q.rt.metrics.Quota()
		x.fail(faultQuota)
		setQuotaHeaders(&x.ctx.Response.Header, limitValue, res)
		setRetryAfter(&x.ctx.Response.Header, res.ResetAfter)
		return
	}
	x.next()
	setQuotaHeaders(&x.ctx.Response.Header, limitValue, res)
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
