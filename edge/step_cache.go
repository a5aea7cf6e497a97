package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/cache"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// cacheStep serves a route's answers from the response cache (edge/cache,
// RFC 9111) and stores what the upstream answers when it may.
//
// Where it runs: last before the proxy step, after compression. The
// upstream is asked for identity (setIdentityEncoding), so the cache
// stores the answer unencoded (unless the upstream encodes regardless) and every answer it gives passes out
// through the compression step (and CORS, security headers, the limit
// headers) on the way to the client: one stored entry serves clients
// that accept gzip, br, zstd or nothing, and per-client headers are never
// stored. It runs after auth and the limits, so a hit is still
// authenticated, rate limited and counted against quotas.
type cacheStep struct{ c *routeCache }

var _ step = cacheStep{}

// routeCache is a route's cache block compiled.
type routeCache struct {
	store       cache.Store
	flights     *cache.Flights
	seed        maphash.Seed // flights are keyed by a hash of the key
	rules       cache.Rules
	key         cache.KeyRules
	maxObject   int
	authorized  bool
	cookies     bool     // cache requests carrying a Cookie
	apiKeyName  string   // the API key header, lower case ("" without one)
	idHeaders   []string // the identity fields only sluice sets (identityHeaders), lower case
	lockTimeout time.Duration
	tees        *teeBudget // shared by every route of the gateway
	name        string
	metrics     *observe.CacheRoute
}

// compileCache compiles a route's validated, defaulted cache block.
func (s *Snapshot) compileCache(rt *route, rc *config.RouteCache) *routeCache {
	kc := s.Config.Cache
	c := &routeCache{
		store:   s.res.cache,
		flights: &cache.Flights{Lead: kc.LockTimeout.D()},
		seed:    maphash.MakeSeed(),
		rules: cache.Rules{DefaultTTL: rc.TTL.D(), StaleWhileRevalidate: rc.StaleWhileRevalidate.D(),
			StaleIfError: rc.StaleIfError.D(), MaxVary: rc.MaxVary},
		maxObject:   int(rc.MaxObjectBytes),
		authorized:  rc.Authorized,
		cookies:     rc.Cookies,
		lockTimeout: kc.LockTimeout.D(),
		tees:        &s.res.cacheTees,
		name:        rt.name,
		metrics:     s.res.metrics.CacheRoute(rt.name),
	}
	c.apiKeyName = lowerASCII(s.Config.Auth.APIKeys.Header)
	for _, h := range identityHeaders(s.Config) {
		if len(h) > 0 {
			c.idHeaders = append(c.idHeaders, lowerASCII(string(h)))
		}
	}
	switch rc.Key.Query {
	case "none":
		c.key.Query = cache.QueryNone
	case "allow":
		c.key.Query = cache.QueryAllow
	case "deny":
		c.key.Query = cache.QueryDeny
	}
	for _, q := range append(rc.Key.QueryAllow, rc.Key.QueryDeny...) {
		c.key.QueryList = append(c.key.QueryList, []byte(q))
	}
	for _, h := range rc.Key.Headers {
		c.key.Headers = append(c.key.Headers, []byte(lowerASCII(h)))
	}
	return c
}

var (
	headerAge              = []byte("Age")
	headerCacheStatus      = []byte("Cache-Status")
	headerIfNoneMatch      = []byte("If-None-Match")
	headerIfModifiedSince  = []byte("If-Modified-Since")
	methodGet              = []byte("GET")
	cacheStatusBypass      = []byte("sluice; fwd=bypass")
	cacheStatusStreamed    = []byte("sluice; fwd=miss; detail=streamed")
	cacheStatusStoring     = []byte("sluice; fwd=miss; detail=stored-when-complete")
	cacheStatusTooLarge    = []byte("sluice; fwd=miss; detail=too-large")
	cacheStatusNoStoreReq  = []byte("sluice; fwd=miss; detail=request-no-store")
	cacheStatusHitPrefix   = "sluice; hit"
	cacheStatusStalePrefix = "sluice; fwd=stale"
)

func (c cacheStep) serve(x *exchange) {
	ctx := x.ctx
	h := &ctx.Request.Header
	get, head := h.IsGet(), h.IsHead()
	if (!get && !head) || (x.hopByHop && wantsWebSocket(h)) || reqHeader(h, "range") != nil {
		c.bypass(x)
		return
	}
	if !c.c.cookies && reqHeader(h, "cookie") != nil {
		c.bypass(x) // a session cookie may personalise the answer
		return
	}
	credentials := reqHeader(h, "authorization") != nil || x.identity != nil || x.apiKey != nil || x.mtls ||
		(c.c.apiKeyName != "" && reqHeader(h, c.c.apiKeyName) != nil)
	if credentials && !c.c.authorized {
		c.bypass(x) // RFC 9111 3.5: not shared unless the route opts in
		return
	}
	if !c.c.appendKey(x) {
		c.bypass(x)
		return
	}
	if credentials {
		x.cacheKey = c.c.appendIdentity(x.cacheKey, x)
	}
	// The upstream is asked for identity: the compression step (outside
	// this one) has read the client's Accept-Encoding already and encodes
	// the answer for each client on the way out, so one stored entry
	// serves every client; an upstream encoding by Accept-Encoding
	// without Vary would otherwise have its br body stored for all. A
	// Vary: Accept-Encoding is then keyed on what the upstream saw.
	setIdentityEncoding(h)
	rq := cache.ParseRequest(h)
	e := c.c.lookup(x)
	now := x.start.UnixNano()
	if e != nil {
		// RFC 9111 5.2.1.1: a request's max-age bounds the age it
		// accepts, fresh or stale; max-age=0 (a reload) accepts none.
		// 5.2.1.3: min-fresh, how much longer it must stay fresh (so
		// never a stale one).
		acceptable := !rq.NoCache && (rq.MaxAge < 0 || (rq.MaxAge > 0 && e.Age(now) <= rq.MaxAge*int64(time.Second))) &&
			(rq.MinFresh < 0 || e.Lifetime-e.Age(now) >= rq.MinFresh*int64(time.Second))
		if acceptable && e.Fresh(now) {
			c.c.metrics.Result(observe.CacheHit)
			c.c.serveEntry(x, e, now, cacheStatusHitPrefix, "")
			return
		}
		if acceptable && !e.MustRevalidate && !e.NoCache && e.Staleness(now) >= 0 && e.Staleness(now) <= e.SWR {
			// RFC 5861 3: answer now, refresh in the background.
			c.c.metrics.Result(observe.CacheStale)
			c.c.serveEntry(x, e, now, cacheStatusHitPrefix, "stale-while-revalidate")
			c.c.refreshInBackground(x, e)
			return
		}
	}
	if rq.OnlyIfCached {
		// RFC 9111 5.2.1.7: no usable entry, and the client forbids
		// going upstream.
		c.c.metrics.Result(observe.CacheMiss)
		x.fail(faultNotCached)
		return
	}
	if head {
		// A HEAD the entry can't answer goes upstream as it is; its
		// answer (no body) is never stored under the GET's key, and it
		// does not revalidate the entry. A later GET's entry answers HEADs.
		c.c.metrics.Result(observe.CacheMiss)
		x.next()
		return
	}
	c.c.fetch(x, e, rq)
}

// bypass passes a request the cache can't take (a method other than GET
// and HEAD, credentials or a Cookie on a route that does not cache them,
// a Range)
// straight on, and says so.
func (c cacheStep) bypass(x *exchange) {
	c.c.metrics.Result(observe.CacheBypass)
	unsafe := !x.ctx.IsGet() && !x.ctx.IsHead() && !x.ctx.IsOptions() && !x.ctx.IsTrace()
	if unsafe {
		// The key is built before the proxy step rewrites the request:
		// its URL part and this route, what every entry of the route
		// for the URL starts with (each scheme's, forwarded host's,
		// caller's and variant's).
		unsafe = c.c.appendURLRoute(x)
	}
	x.next()
	x.ctx.Response.Header.SetCanonical(headerCacheStatus, cacheStatusBypass)
	if s := x.ctx.Response.StatusCode(); unsafe && s >= 200 && s < 400 {
		// RFC 9111 4.4: a successful unsafe request invalidates what is
		// stored for its URI on this route, under every scheme and
		// caller (an authorized route keys the caller's identity), on
		// every instance with Redis.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = c.c.store.Purge(ctx, cache.Purge{Kind: cache.PurgeInvalidate, Arg: string(x.cacheKey)})
		cancel()
	}
}

// appendURLRoute builds in x.cacheKey the start of every key of this
// route for x's URL: appendKey's URL part and route. false: the request
// can't be keyed.
func (c *routeCache) appendURLRoute(x *exchange) bool {
	h := &x.ctx.Request.Header
	key, ok := c.key.AppendKey(x.cacheKey[:0], methodGet, h.Host(), x.path, x.query, x.ctx.IsTLS(), h)
	key = append(key, "\x00r:"...)
	x.cacheKey = appendNoNUL(key, c.name)
	return ok
}

// appendKey builds x's primary key in x.cacheKey: the URL part (what
// purges name), then the route, so two routes answering one URL (a
// header or cookie condition choosing another upstream) never share
// entries, then the scheme and what else the upstream will be told of
// the URL (setForwarded): from a trusted proxy, its X-Forwarded-Proto
// (the scheme), -Host, -Port, -Prefix, X-Original-URL and X-Rewrite-URL
// reach the upstream, which builds links and redirects from them. false:
// the request can't be keyed.
func (c *routeCache) appendKey(x *exchange) bool {
	h := &x.ctx.Request.Header
	ok := c.appendURLRoute(x)
	key := append(x.cacheKey, "\x00s:"...)
	peer, _ := netip.AddrFromSlice(x.ctx.RemoteIP())
	trusted := len(x.snap.trusted) > 0 && x.snap.isTrusted(peer.Unmap())
	proto := []byte(nil)
	if trusted {
		if !forwardedOnce(h) {
			// Several lines of one of them all reach the upstream (RFC
			// 9110 5.3: one list), which may read any: not keyed.
			return false
		}
		proto = reqHeader(h, "x-forwarded-proto")
		if hasUpperASCII(proto) {
			// The upstream is told the scheme as it is keyed.
			lower := cache.AppendLowerNoNUL(nil, proto)
			h.SetCanonical(headerXFP, lower)
			proto = lower
		}
	}
	switch {
	case len(proto) > 0:
		key = cache.AppendLowerNoNUL(key, proto)
	case x.ctx.IsTLS():
		key = append(key, "https"...)
	default:
		key = append(key, "http"...)
	}
	if trusted {
		for _, name := range forwardedURLFields {
			if v := reqHeader(h, name); v != nil {
				key = append(key, "\x00f:"...)
				key = append(key, name...)
				key = append(key, '=')
				for _, b := range v { // as sent: a prefix or URL is case-sensitive
					if b == 0 {
						b = ' '
					}
					key = append(key, b)
				}
			}
		}
	}
	x.cacheKey = key
	return ok
}

// forwardedOnce reports whether each of X-Forwarded-Proto and
// forwardedURLFields is on one line at most.
func forwardedOnce(h *fasthttp.RequestHeader) bool {
	var seen [1 + len(forwardedURLFields)]bool // x-forwarded-proto, then forwardedURLFields
	for k := range h.All() {
		i := -1
		if equalFoldASCII(k, "x-forwarded-proto") {
			i = 0
		} else {
			for j, name := range forwardedURLFields {
				if equalFoldASCII(k, name) {
					i = 1 + j
					break
				}
			}
		}
		if i >= 0 {
			if seen[i] {
				return false
			}
			seen[i] = true
		}
	}
	return true
}

func hasUpperASCII(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// forwardedURLFields are the fields a trusted proxy sends that describe
// the URL the client used (besides X-Forwarded-Proto, the scheme).
var forwardedURLFields = [...]string{"x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix", "x-original-url", "x-rewrite-url"}

// appendIdentity adds the caller to the key of a route that caches
// requests with credentials: a hash of everything the upstream may answer
// by — the credentials still sent on (the JWT itself: the upstream can
// read any claim from it), the verified subject and roles, and the
// identity fields sluice forwards (claims, the API key's id). Two tokens
// of one subject with different tenants or roles never share an entry. A
// hash, never the credential itself: keys are stored in Redis and shown
// by purges.
func (c *routeCache) appendIdentity(dst []byte, x *exchange) []byte {
	// An unambiguous encoding: each part tagged 'p' and length-prefixed,
	// each list closed by 'e', so no part can slide into the next one or
	// from one list into another (roles into forwarded claims).
	hs := sha256.New()
	var pre [9]byte
	put := func(b []byte) {
		pre[0] = 'p'
		binary.BigEndian.PutUint64(pre[1:], uint64(len(b)))
		hs.Write(pre[:])
		hs.Write(b)
	}
	end := func() { hs.Write([]byte{'e'}) }
	if id := x.identity; id != nil {
		put([]byte("sub"))
		put([]byte(id.Subject))
		for _, r := range id.Roles {
			put([]byte(r))
		}
		end()
		for _, kv := range id.Headers {
			put(kv[0])
			put(kv[1])
		}
		end()
	}
	if k := x.apiKey; k != nil {
		put([]byte("key"))
		put([]byte(k.ID))
		for _, r := range k.Roles {
			put([]byte(r))
		}
		end()
	}
	h := &x.ctx.Request.Header
	put([]byte("cred"))
	for k, v := range h.All() {
		if equalFoldASCII(k, "authorization") || (c.apiKeyName != "" && equalFoldASCII(k, c.apiKeyName)) {
			put(v)
		}
	}
	end()
	// What sluice tells the upstream of the caller: a client
	// certificate's subject and fingerprint, forwarded claims.
	for _, name := range c.idHeaders {
		put([]byte(name))
		for k, v := range h.All() {
			if equalFoldASCII(k, name) {
				put(v)
			}
		}
		end()
	}
	var sum [sha256.Size]byte
	dst = append(dst, "\x00id:"...)
	return hex.AppendEncode(dst, hs.Sum(sum[:0])[:16])
}

func appendNoNUL(dst []byte, s string) []byte {
	for i := range len(s) {
		c := s[i]
		if c == 0 {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// lookup finds the request's entry: the primary key's, or through a
// variant index the variant matching the request's Vary fields (its key
// in x.varyKey). nil: a miss.
func (c *routeCache) lookup(x *exchange) *cache.Entry {
	bg := context.Background()
	e, ok := c.store.Get(bg, x.cacheKey)
	if !ok {
		return nil
	}
	if !e.Index {
		return e
	}
	x.varyKey = cache.AppendVary(append(x.varyKey[:0], x.cacheKey...), e.Vary, &x.ctx.Request.Header)
	if e, ok = c.store.Get(bg, x.varyKey); !ok {
		return nil
	}
	return e
}

// serveEntry writes e as the answer: status, stored fields, body, Age
// and Cache-Status (RFC 9211), or a 304 when the client's own
// conditional request matches (RFC 9110 13.1). It allocates nothing: the
// body is the entry's, shared (entries are never changed).
func (c *routeCache) serveEntry(x *exchange, e *cache.Entry, now int64, status string, detail string) {
	resp := &x.ctx.Response
	if resp.StatusCode() != fasthttp.StatusOK || resp.Header.Len() > 0 || len(resp.Body()) > 0 {
		// An upstream's answer (a 304, an error) is replaced whole. Reset
		// also clears what the server set per request: set it again.
		resp.Reset()
		resp.Header.DisableNormalizing()
		resp.Header.SetNoDefaultContentType(true)
	}
	notModified := clientConditionMatches(&x.ctx.Request.Header, e)
	if notModified {
		resp.SetStatusCode(fasthttp.StatusNotModified)
		for _, f := range e.Header {
			if validatorField(f.Name) {
				resp.Header.AddBytesKV(f.Name, f.Value)
			}
		}
		resp.SkipBody = true
	} else {
		resp.SetStatusCode(e.Status)
		for _, f := range e.Header {
			resp.Header.AddBytesKV(f.Name, f.Value)
		}
		resp.SetBodyRaw(e.Body)
		resp.SkipBody = x.ctx.IsHead()
	}
	var b [96]byte
	age := e.Age(now) / int64(time.Second)
	resp.Header.SetCanonical(headerAge, strconv.AppendInt(b[:0], age, 10))
	s := append(b[:0], status...)
	ttl := (e.Lifetime - e.Age(now)) / int64(time.Second)
	s = append(s, "; ttl="...)
	s = strconv.AppendInt(s, ttl, 10)
	if detail != "" {
		s = append(s, "; detail="...)
		s = append(s, detail...)
	}
	resp.Header.SetCanonical(headerCacheStatus, s)
	resp.Header.SetCanonical(headerRequestID, x.id)
}

// validatorField: the fields a 304 carries (RFC 9110 15.4.5).
func validatorField(name []byte) bool {
	return equalFoldASCII(name, "etag") || equalFoldASCII(name, "cache-control") || equalFoldASCII(name, "expires") ||
		equalFoldASCII(name, "vary") || equalFoldASCII(name, "date") || equalFoldASCII(name, "content-location") ||
		equalFoldASCII(name, "last-modified")
}

// clientConditionMatches evaluates the client's If-None-Match (weak
// comparison, RFC 9110 13.1.2), or without one If-Modified-Since
// (13.1.3), against e.
func clientConditionMatches(h *fasthttp.RequestHeader, e *cache.Entry) bool {
	if inm := reqHeader(h, "if-none-match"); inm != nil {
		return len(e.ETag) > 0 && etagListMatches(inm, e.ETag)
	}
	ims := reqHeader(h, "if-modified-since")
	if len(ims) == 0 || len(e.LastModified) == 0 {
		return false
	}
	since, err := fasthttp.ParseHTTPDate(ims)
	if err != nil {
		return false
	}
	lm, err := fasthttp.ParseHTTPDate(e.LastModified)
	return err == nil && !lm.After(since)
}

// etagListMatches: "*", or any listed entity tag weakly equal to etag.
func etagListMatches(list, etag []byte) bool {
	if string(bytes.TrimSpace(list)) == "*" {
		return true
	}
	etag = bytes.TrimPrefix(etag, []byte("W/"))
	for len(list) > 0 {
		var t []byte
		t, list = cutByte(list, ',')
		t = bytes.TrimPrefix(trimOWS(t), []byte("W/"))
		if len(t) > 0 && bytes.Equal(t, etag) {
			return true
		}
	}
	return false
}

// fetch goes upstream for a miss or a stale entry, coalesced with the
// other requests for the key: one leads, the rest wait for its entry
// (bounded by cache.lock_timeout) and go upstream themselves when there
// is none. A stale entry with validators is revalidated (RFC 9111 4.3.1).
func (c *routeCache) fetch(x *exchange, stale *cache.Entry, rq cache.Request) {
	hk := maphash.Bytes(c.seed, x.cacheKey)
	fl, leader := c.flights.Join(hk)
	if !leader {
		c.metrics.Result(observe.CacheCoalesced)
		if e := fl.Wait(c.lockTimeout); e != nil && c.matches(x, e) {
			c.serveEntry(x, e, time.Now().UnixNano(), cacheStatusHitPrefix+"; collapsed", "")
			return
		}
		c.forward(x, stale, rq, nil)
		return
	}
	lead := &leadFlight{fs: c.flights, hk: hk, fl: fl}
	var stored *cache.Entry
	defer func() {
		if !lead.handed {
			c.flights.Done(hk, fl, stored)
		}
	}()
	stored = c.forward(x, stale, rq, lead)
}

// leadFlight is a leader's flight, for forward to hand to the cacheTee of
// a streamed answer: the flight then ends when the tee has stored the
// entry (or given up), so the waiters get the stored entry too.
type leadFlight struct {
	fs     *cache.Flights
	hk     uint64
	fl     *cache.Flight
	handed bool // the tee ends the flight
}

// matches reports whether a leader's entry answers x: the same key, or
// for a variant, the variant x's Vary fields select.
func (c *routeCache) matches(x *exchange, e *cache.Entry) bool {
	if len(e.Vary) == 0 {
		return e.Key == string(x.cacheKey)
	}
	x.varyKey = cache.AppendVary(append(x.varyKey[:0], x.cacheKey...), e.Vary, &x.ctx.Request.Header)
	return e.Key == string(x.varyKey)
}

// forward sends the request upstream (the rest of the route's steps) and
// stores what may be stored. It returns the entry stored, if any. lead:
// the flight x leads (nil: none), handed to the cacheTee of a streamed
// answer stored when complete.
func (c *routeCache) forward(x *exchange, stale *cache.Entry, rq cache.Request, lead *leadFlight) *cache.Entry {
	h := &x.ctx.Request.Header
	// The client's own validators would get a 304 the cache can't store,
	// or one about the client's tag taken for the entry's: they never go
	// upstream, and are answered from the entry instead (kept aside for
	// that when they fit; longer ones get the whole answer).
	var condBuf [256]byte
	cond := condBuf[:0]
	inm, ims := reqHeader(h, "if-none-match"), reqHeader(h, "if-modified-since")
	var inmLen int
	if len(inm)+len(ims) <= len(condBuf) {
		cond = append(append(cond, inm...), ims...)
		inmLen = len(inm)
	}
	delReqHeader(h, "if-none-match")
	delReqHeader(h, "if-modified-since")
	revalidating := stale != nil && stale.Validators()
	if revalidating {
		if len(stale.ETag) > 0 {
			h.SetCanonical(headerIfNoneMatch, stale.ETag)
		}
		if len(stale.LastModified) > 0 {
			h.SetCanonical(headerIfModifiedSince, stale.LastModified)
		}
	}
	x.next()
	restore := func() {
		delReqHeader(h, "if-none-match")
		delReqHeader(h, "if-modified-since")
		if inmLen > 0 {
			h.SetCanonical(headerIfNoneMatch, cond[:inmLen])
		}
		if len(cond) > inmLen {
			h.SetCanonical(headerIfModifiedSince, cond[inmLen:])
		}
	}
	restore()
	resp := &x.ctx.Response
	status := resp.StatusCode()
	now := time.Now()
	if revalidating && status == fasthttp.StatusNotModified && !resp.IsBodyStream() {
		// Never relay the upstream's 304 itself: it answers the cache's
		// validators, not the client's (who may have sent none).
		e, storable := c.refreshed(stale, &resp.Header, now)
		c.metrics.Result(observe.CacheRevalidated)
		if !storable {
			// The stored entry may not be used again either.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = c.store.Purge(ctx, cache.Purge{Kind: cache.PurgeExact, Arg: stale.Key})
			cancel()
			c.serveEntry(x, e, now.UnixNano(), cacheStatusStalePrefix+"; fwd-status=304", "not-stored")
			return nil
		}
		if len(e.Vary) > 0 {
			// The index is kept as long as the variant it leads to.
			c.store.Set(context.Background(), variantIndex(e, string(x.cacheKey)), now.UnixNano())
		}
		c.store.Set(context.Background(), e, now.UnixNano())
		c.serveEntry(x, e, now.UnixNano(), cacheStatusStalePrefix+"; fwd-status=304", "")
		return e
	}
	if stale != nil && serverError(status) && !stale.MustRevalidate && stale.Staleness(now.UnixNano()) <= stale.SIE && !x.streaming {
		// RFC 5861 4: the upstream failed (or its circuit is open:
		// sluice's own 503); the stale entry is better than an error.
		if resp.IsBodyStream() {
			_ = resp.CloseBodyStream()
		}
		c.metrics.Result(observe.CacheStale)
		var b [48]byte
		c.serveEntry(x, stale, now.UnixNano(), string(append(append(b[:0], cacheStatusStalePrefix+"; fwd-status="...), smallStatus(status)...)), "stale-if-error")
		return nil
	}
	c.metrics.Result(observe.CacheMiss)
	fwd := "sluice; fwd=miss"
	if stale != nil {
		fwd = "sluice; fwd=stale"
	}
	switch {
	case rq.NoStore:
		resp.Header.SetCanonical(headerCacheStatus, cacheStatusNoStoreReq)
		return nil
	case resp.IsBodyStream():
		// Larger than the buffer: never held whole before it is relayed;
		// copied as it passes instead, when its declared length fits
		// (cacheTee). An answer of unknown length (chunked or
		// close-delimited) is not stored: the copy is sized and bounded
		// by the declared length, and a close-delimited body's end can't
		// be told from a hang-up. (A chunked one's can: pool reports a
		// hang-up between two chunks as a broken stream.)
		if cl := resp.Header.ContentLength(); cl < 0 || cl > c.maxObject || !x.streaming || x.route.streaming || isEventStream(resp.Header.ContentType()) {
			resp.Header.SetCanonical(headerCacheStatus, cacheStatusStreamed)
			return nil
		}
	case len(resp.Body()) > c.maxObject:
		resp.Header.SetCanonical(headerCacheStatus, cacheStatusTooLarge)
		return nil
	}
	e := &cache.Entry{Route: c.name}
	if reason := cache.Evaluate(status, &resp.Header, now, &c.rules, e); reason != "" {
		resp.Header.Set("Cache-Status", fwd+"; detail="+reason)
		return nil
	}
	copyFields(e, resp)
	e.Key = string(x.cacheKey)
	var idx *cache.Entry
	if len(e.Vary) > 0 {
		idx = variantIndex(e, e.Key)
		x.varyKey = cache.AppendVary(append(x.varyKey[:0], x.cacheKey...), e.Vary, h)
		e.Key = string(x.varyKey)
	}
	if resp.IsBodyStream() {
		t := &cacheTee{c: c, e: e, idx: idx, want: resp.Header.ContentLength()}
		if lead != nil {
			t.lead, lead.handed = lead, true
		}
		if pool.FilterStream(resp, t) {
			resp.Header.SetCanonical(headerCacheStatus, cacheStatusStoring)
		} else if lead != nil {
			t.lead, lead.handed = nil, false
		}
		return nil
	}
	e.Body = append([]byte(nil), resp.Body()...)
	if idx != nil {
		c.store.Set(context.Background(), idx, now.UnixNano())
	}
	c.store.Set(context.Background(), e, now.UnixNano())
	if (inmLen > 0 || len(cond) > inmLen) && clientConditionMatches(h, e) {
		c.serveEntry(x, e, now.UnixNano(), fwd+"; stored", "")
		return e
	}
	resp.Header.Set("Cache-Status", fwd+"; stored")
	return e
}

// variantIndex is the index stored under the primary key of variant e:
// its Vary, and its freshness and validators so that a store keeps the
// index as long as the variant (Entry.Retain).
func variantIndex(e *cache.Entry, primary string) *cache.Entry {
	return &cache.Entry{Key: primary, Route: e.Route, Index: true, Vary: e.Vary, ResponseTime: e.ResponseTime,
		InitialAge: e.InitialAge, Lifetime: e.Lifetime, SWR: e.SWR, SIE: e.SIE, MustRevalidate: e.MustRevalidate,
		ETag: e.ETag, LastModified: e.LastModified}
}

// teeFirstBuf is a cacheTee's first buffer; it doubles as bytes arrive.
const teeFirstBuf = 64 << 10

// teeBudget bounds the bytes held by the copies of streamed answers in
// flight, all routes together (cache.memory_bytes: they are on their way
// to the memory tier), so stalled answers can't hold max_object_bytes
// each without end.
type teeBudget struct {
	used atomic.Int64
	max  int64
}

func (b *teeBudget) reserve(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *teeBudget) release(n int64) { b.used.Add(-n) }

// cacheTee copies a streamed answer's body as it is relayed (a
// pool.StreamFilter) and stores the entry when the body ended at its
// declared length (only answers whose Content-Length is within
// max_object_bytes get one). Memory: about twice the bytes received so
// far, at most max_object_bytes per such answer in flight.
type cacheTee struct {
	src      io.Reader
	c        *routeCache
	e, idx   *cache.Entry // evaluated at the head; idx: the variant index, or nil
	buf      []byte
	held     int         // bytes of buf taken from the budget
	want     int         // the declared length
	lead     *leadFlight // the flight to end when done; nil: none
	over     bool
	complete bool
}

var _ pool.StreamFilter = (*cacheTee)(nil)

func (t *cacheTee) Start(src io.Reader) { t.src = src }

func (t *cacheTee) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if !t.over && n > 0 {
		if len(t.buf)+n > t.c.maxObject {
			t.drop()
		} else if t.grow(n) {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if err == io.EOF && !t.over && len(t.buf) == t.want {
		t.complete = true
	}
	return n, err
}

// grow makes room for n more bytes: grown with the bytes that arrive
// (from teeFirstBuf, doubling, capped at the declared length: the copy
// ends at most want long), never sized by the declared length alone, so
// an answer declaring max_object_bytes and then stalling holds only what
// it sent. The growth is taken from the gateway's budget; when that is
// spent the copy is dropped (the answer is relayed, not stored).
func (t *cacheTee) grow(n int) bool {
	if len(t.buf)+n <= cap(t.buf) {
		return true
	}
	size := min(max(2*cap(t.buf), teeFirstBuf, len(t.buf)+n), max(t.want, len(t.buf)+n))
	if !t.c.tees.reserve(int64(size - cap(t.buf))) {
		t.drop()
		return false
	}
	t.held += size - cap(t.buf)
	nb := make([]byte, len(t.buf), size)
	copy(nb, t.buf)
	t.buf = nb
	return true
}

// drop gives up the copy and its budget.
func (t *cacheTee) drop() {
	t.over, t.buf = true, nil
	t.c.tees.release(int64(t.held))
	t.held = 0
}

// Done stores the entry if the whole body went by. Called when the
// stream closes, after the answer has been written.
// Ends the leader's flight, handing the waiters the entry (nil: they go
// upstream themselves).
func (t *cacheTee) Done() {
	var stored *cache.Entry
	t.c.tees.release(int64(t.held)) // the stored entry counts in the store instead
	t.held = 0
	if t.complete {
		now := time.Now().UnixNano()
		t.e.Body = t.buf
		if t.idx != nil {
			t.c.store.Set(context.Background(), t.idx, now)
		}
		t.c.store.Set(context.Background(), t.e, now)
		stored = t.e
	}
	if l := t.lead; l != nil {
		l.fs.Done(l.hk, l.fl, stored)
	}
}

func serverError(s int) bool { return s == 500 || s == 502 || s == 503 || s == 504 }

func smallStatus(s int) string { return strconv.Itoa(s) }

// notStored are response fields never stored: per-request (the request
// id, retry count), recomputed (Age, Content-Length), or hop-by-hop.
func notStored(name []byte) bool {
	return equalFoldASCII(name, "content-length") || equalFoldASCII(name, "age") ||
		equalFoldASCII(name, "x-request-id") || equalFoldASCII(name, "x-retry-count") ||
		equalFoldASCII(name, "connection") || equalFoldASCII(name, "transfer-encoding") ||
		equalFoldASCII(name, "keep-alive") || equalFoldASCII(name, "set-cookie") ||
		equalFoldASCII(name, "cache-status")
}

// copyFields copies the answer's stored fields into e.
func copyFields(e *cache.Entry, resp *fasthttp.Response) {
	for k, v := range resp.Header.All() {
		if notStored(k) {
			continue
		}
		e.Header = append(e.Header, cache.Field{Name: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
	}
}

// refreshed is stale updated by a 304 (RFC 9111 4.3.4): the 304's fields
// replace the stored ones of the same name, and freshness is computed
// again. storable is false when the merged answer may no longer be
// stored: it answers the request that revalidated, and no other.
func (c *routeCache) refreshed(stale *cache.Entry, h304 *fasthttp.ResponseHeader, now time.Time) (_ *cache.Entry, storable bool) {
	var merged fasthttp.ResponseHeader
	merged.DisableNormalizing()
	for _, f := range stale.Header {
		replaced := false
		for k := range h304.All() {
			if bytes.EqualFold(k, f.Name) && !notStored(k) && !equalFoldASCII(k, "content-type") {
				replaced = true
				break
			}
		}
		if !replaced {
			merged.AddBytesKV(f.Name, f.Value)
		}
	}
	for k, v := range h304.All() {
		if !notStored(k) && !equalFoldASCII(k, "content-type") && !equalFoldASCII(k, "content-encoding") {
			merged.AddBytesKV(k, v)
		}
	}
	e := &cache.Entry{Route: c.name, Key: stale.Key}
	reason := cache.Evaluate(stale.Status, &merged, now, &c.rules, e)
	if reason != "" {
		// Not storable any more (private, no-store, Vary: * now): still
		// the answer to this request (RFC 9111 4.3.3), served once.
		e = &cache.Entry{Route: c.name, Key: stale.Key, Status: stale.Status, ResponseTime: now.UnixNano()}
	}
	var resp fasthttp.Response
	merged.CopyTo(&resp.Header)
	copyFields(e, &resp)
	e.Body, e.Vary = stale.Body, stale.Vary
	return e, reason == ""
}

// refreshInBackground revalidates e off the request path
// (stale-while-revalidate), through the route's proxy step on a copy of
// the request made a GET (whatever the client's method: a HEAD too). At most one refresh per key runs at a time (the flight).
func (c *routeCache) refreshInBackground(x *exchange, e *cache.Entry) {
	hk := maphash.Bytes(c.seed, x.cacheKey)
	fl, leader := c.flights.Join(hk)
	if !leader {
		return
	}
	dctx := new(fasthttp.RequestCtx)
	dctx.Init2(detachedConn{remote: x.ctx.RemoteAddr(), local: x.ctx.LocalAddr()}, nil, false)
	x.ctx.Request.CopyTo(&dctx.Request)
	// Always a GET: the entry is a GET's. A HEAD's answer has no body
	// and, stored under the GET's key, would blank the entry for all.
	dctx.Request.Header.SetMethodBytes(methodGet)
	dx := acquireExchange(dctx, x.snap)
	dx.route, dx.step = x.route, len(x.route.steps)-1
	dx.path = append(dx.pathBuf[:0], x.path...)
	dx.query = dctx.Request.URI().QueryString()
	dx.id = append(dx.idBuf[:0], x.id...)
	dx.hopByHop, dx.claimsAddr = x.hopByHop, x.claimsAddr
	dx.identity, dx.apiKey = x.identity, x.apiKey
	dx.cacheKey = append(dx.cacheKey[:0], x.cacheKey...)
	log := x.snap.log
	go func() {
		var stored *cache.Entry
		lead := &leadFlight{fs: c.flights, hk: hk, fl: fl}
		defer func() {
			if !lead.handed {
				c.flights.Done(hk, fl, stored)
			}
			if p := recover(); p != nil {
				// Off the request path, nobody else would catch it: a
				// refresh that breaks must not take the gateway down.
				log.Error("cache: background refresh panicked", "route", c.name, "panic", fmt.Sprint(p))
			}
		}()
		dctx.Request.Header.Del("Cache-Control") // the refresh itself is not a no-cache request
		stored = c.forward(dx, e, cache.Request{MaxAge: -1, MinFresh: -1}, lead)
		if dx.streaming {
			// Nobody writes this answer. One the cache copies as it passes
			// (its Content-Length within max_object_bytes) is read through,
			// so it is stored; any other is just closed. StreamDone (on
			// close) records and releases dx.
			if bytes.Equal(dctx.Response.Header.PeekBytes(headerCacheStatus), cacheStatusStoring) {
				_, _ = io.Copy(io.Discard, dctx.Response.BodyStream())
			}
			_ = dctx.Response.CloseBodyStream()
			return
		}
		releaseExchange(dx)
	}()
}

// reqHeader is the first line of a request field by its lower-case name,
// whatever case it is in: fasthttp normalizes names it parses (newServer
// keeps that default), but a field sluice set with SetCanonical keeps the
// case it was given, so the compare ignores case rather than trust Peek.
// nil: absent. Aliases the header.
func reqHeader(h *fasthttp.RequestHeader, lower string) []byte {
	for k, v := range h.All() {
		if equalFoldASCII(k, lower) {
			if v == nil {
				v = []byte{}
			}
			return v
		}
	}
	return nil
}

var codingIdentityValue = []byte("identity")

// setIdentityEncoding makes the request's Accept-Encoding "identity" (one
// line, whatever case the client's lines were in).
func setIdentityEncoding(h *fasthttp.RequestHeader) {
	delReqHeader(h, "accept-encoding")
	h.SetCanonical(headerAcceptEncoding, codingIdentityValue)
}

// delReqHeader removes every line of a request field, any case.
func delReqHeader(h *fasthttp.RequestHeader, lower string) {
	for {
		var kb [64]byte
		var k []byte
		for name := range h.All() {
			if equalFoldASCII(name, lower) {
				k = append(kb[:0], name...)
				break
			}
		}
		if k == nil {
			return
		}
		h.DelBytes(k)
	}
}

// detachedConn is the connection of a background refresh's request: it
// has the client's addresses (for X-Forwarded-For) and nothing to read
// or write; deadlines are accepted and ignored.
type detachedConn struct{ remote, local net.Addr }

var _ net.Conn = detachedConn{}

func (detachedConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (detachedConn) Write(b []byte) (int, error)      { return len(b), nil }
func (detachedConn) Close() error                     { return nil }
func (c detachedConn) LocalAddr() net.Addr            { return c.local }
func (c detachedConn) RemoteAddr() net.Addr           { return c.remote }
func (detachedConn) SetDeadline(time.Time) error      { return nil }
func (detachedConn) SetReadDeadline(time.Time) error  { return nil }
func (detachedConn) SetWriteDeadline(time.Time) error { return nil }
