package cache

import (
	"bytes"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Rules are a route's choices for answers that say little themselves.
type Rules struct {
	// DefaultTTL is the freshness lifetime of a heuristically cacheable
	// answer (RFC 9111 4.2.2) with no explicit one. 0: such answers are
	// not stored.
	DefaultTTL time.Duration
	// StaleWhileRevalidate and StaleIfError apply when the answer names
	// no window of its own (RFC 5861).
	StaleWhileRevalidate, StaleIfError time.Duration
	// MaxVary bounds the fields an answer may vary on; more and it is not
	// stored (a Vary listing hundreds of fields would split the cache into
	// one entry per request).
	MaxVary int
}

// Not-stored reasons, for Cache-Status detail and logs.
const (
	ReasonStatus    = "status"
	ReasonNoStore   = "no-store"
	ReasonPrivate   = "private"
	ReasonCookie    = "set-cookie"
	ReasonVary      = "vary"
	ReasonNoFresh   = "no-freshness"
	ReasonInvalid   = "invalid-cache-control"
	ReasonRange     = "content-range"
	ReasonTooLarge  = "too-large"
	ReasonStreamed  = "streamed"
	ReasonNoCacheNV = "no-cache-without-validators"
)

// understood are the status codes sluice stores at all (RFC 9111 3:
// "the response status code is final and understood"); heuristic are
// those that may be stored without explicit freshness (RFC 9110 15.1).
// 206 is left out: sluice does not combine ranges.
func understood(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

func heuristic(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// Evaluate decides whether an answer may be stored by a shared cache
// (RFC 9111 3, 3.5) and fills e's metadata: freshness (4.2.1), initial
// age (4.2.3), stale windows, validators, tags and Vary. now is when the
// answer arrived. It returns "" when e may be stored, else the reason.
// The request side (method, Authorization, request no-store) is the
// caller's to decide before.
func Evaluate(status int, h *fasthttp.ResponseHeader, now time.Time, r *Rules, e *Entry) string {
	if !understood(status) {
		return ReasonStatus
	}
	var d Directives
	d.Reset()
	var date, expires, age []byte
	hasExpires := false
	for k, v := range h.All() {
		switch {
		case eqFold(k, "cache-control"):
			ParseCacheControl(v, &d)
		case eqFold(k, "set-cookie"):
			// RFC 9111 7.3 / 3: a shared cache must not hand one client's
			// cookie to another.
			return ReasonCookie
		case eqFold(k, "content-range"):
			return ReasonRange
		case eqFold(k, "date"):
			date = v
		case eqFold(k, "expires"):
			expires, hasExpires = v, true
		case eqFold(k, "age"):
			age = v
		case eqFold(k, "etag"):
			e.ETag = append([]byte(nil), v...)
		case eqFold(k, "last-modified"):
			e.LastModified = append([]byte(nil), v...)
		case eqFold(k, "vary"):
			if !addVary(e, v, r.MaxVary) {
				return ReasonVary
			}
		case eqFold(k, "surrogate-key"), eqFold(k, "cache-tag"):
			addTags(e, v)
		}
	}
	switch {
	case d.NoStore:
		return ReasonNoStore
	case d.Private:
		return ReasonPrivate
	case d.Invalid:
		return ReasonInvalid
	}
	nowNs := now.UnixNano()
	dateT, dateOK := parseDate(date)
	if !dateOK {
		dateT = now
	}
	// Freshness lifetime, RFC 9111 4.2.1: s-maxage, then max-age, then
	// Expires minus Date; else heuristic (the route's default TTL).
	var lifetime int64
	switch {
	case d.SMaxAge >= 0:
		lifetime = d.SMaxAge * int64(time.Second)
		e.MustRevalidate = true // s-maxage implies proxy-revalidate (5.2.2.10)
	case d.MaxAge >= 0:
		lifetime = d.MaxAge * int64(time.Second)
	case hasExpires:
		// An invalid Expires ("0") means already expired (5.3).
		if t, ok := parseDate(expires); ok {
			lifetime = max(0, t.Sub(dateT).Nanoseconds())
		}
	case d.NoCache:
		lifetime = 0
	default:
		if r.DefaultTTL <= 0 || !heuristic(status) {
			return ReasonNoFresh
		}
		lifetime = int64(r.DefaultTTL)
	}
	if d.MustRevalidate {
		e.MustRevalidate = true
	}
	e.NoCache = d.NoCache
	e.Lifetime = lifetime
	// Age, RFC 9111 4.2.3 (response_delay taken as 0: sluice measures
	// the time from sending, not the request's own start).
	apparent := max(0, nowNs-dateT.UnixNano())
	var ageValue int64
	if n, ok := parseDelta(trimOWS(age)); ok {
		ageValue = n * int64(time.Second)
	}
	e.InitialAge = max(apparent, ageValue)
	e.ResponseTime = nowNs
	e.SWR, e.SIE = int64(r.StaleWhileRevalidate), int64(r.StaleIfError)
	if d.StaleWhileRevalidate >= 0 {
		e.SWR = d.StaleWhileRevalidate * int64(time.Second)
	}
	if d.StaleIfError >= 0 {
		e.SIE = d.StaleIfError * int64(time.Second)
	}
	if e.MustRevalidate {
		e.SWR, e.SIE = 0, 0
	}
	if (d.NoCache || lifetime == 0) && !e.Validators() && (d.NoCache || e.SWR == 0 && e.SIE == 0) {
		return ReasonNoCacheNV // it could never be used
	}
	e.Status = status
	return ""
}

func parseDate(b []byte) (time.Time, bool) {
	if len(b) == 0 {
		return time.Time{}, false
	}
	t, err := fasthttp.ParseHTTPDate(b)
	return t, err == nil
}

// addVary adds a Vary field's names (lower case) to e. It refuses "*"
// (RFC 9111 4.1: never matches) and more than max names.
func addVary(e *Entry, v []byte, maxNames int) bool {
	for len(v) > 0 {
		var item []byte
		item, v = nextItem(v)
		item = trimOWS(item)
		if len(item) == 0 {
			continue
		}
		if string(item) == "*" || len(item) > 64 {
			return false
		}
		name := strings.ToLower(string(item))
		dup := false
		for _, n := range e.Vary {
			dup = dup || n == name
		}
		if !dup {
			e.Vary = append(e.Vary, name)
		}
		if len(e.Vary) > maxNames {
			return false
		}
	}
	return true
}

// addTags adds the purge tags of a Surrogate-Key (space-separated) or
// Cache-Tag (comma-separated) field. At most 64, each at most 128 bytes.
func addTags(e *Entry, v []byte) {
	for _, t := range bytes.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		if len(e.Tags) < 64 && len(t) <= 128 {
			e.Tags = append(e.Tags, string(t))
		}
	}
}

// Request is what the cache reads of a request's own Cache-Control
// (RFC 9111 5.2.1).
type Request struct {
	NoStore bool  // don't store the answer
	NoCache bool  // don't use a stored answer without validating it
	MaxAge  int64 // seconds, -1 absent: no entry older than this
	// MinFresh: seconds, -1 absent: only an entry fresh for at least
	// this much longer (5.2.1.3).
	MinFresh int64
	// OnlyIfCached: answer from the cache or with 504, never upstream
	// (5.2.1.7).
	OnlyIfCached bool
}

// ParseRequest reads the request's Cache-Control and Pragma fields.
func ParseRequest(h *fasthttp.RequestHeader) Request {
	var d Directives
	d.Reset()
	pragmaNoCache, hasCC := false, false
	for k, v := range h.All() {
		switch {
		case eqFold(k, "cache-control"):
			hasCC = true
			ParseCacheControl(v, &d)
		case eqFold(k, "pragma"):
			pragmaNoCache = bytes.Contains(v, []byte("no-cache"))
		}
	}
	r := Request{NoStore: d.NoStore, NoCache: d.NoCache, MaxAge: d.MaxAge, MinFresh: d.MinFresh, OnlyIfCached: d.OnlyIfCached}
	// Pragma: no-cache counts only without Cache-Control (5.4).
	if pragmaNoCache && !hasCC {
		r.NoCache = true
	}
	return r
}
