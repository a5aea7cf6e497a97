package edge

import "github.com/sluicegw/sluice/edge/config"

// step is one stage of a route's request path. Its settings are parsed and
// its choices made when the snapshot is built (which auth mode, which
// limiter, which key parts): serve only reads them. serve either answers
// the request (x.fail, or a response of its own) or calls x.next() to run
// the rest of the route's steps, and may touch the answer after next
// returns (the limit steps add their headers then).
type step interface {
	serve(x *exchange)
}

// routeSteps lists a route's steps in the order a request meets them:
//
//	security    step_security.go   security headers on whatever answers the request
//	ip filter   step_ipfilter.go   the route's own ip_filter, after the top-level one (403)
//	cors        step_cors.go       answer preflights (204/403); CORS headers on every other answer
//	auth        step_auth.go       who is calling: JWT, API key, either (401/403)
//	rate limit  step_ratelimit.go  a token from the caller's bucket (429)
//	quota       step_quota.go      a request from the caller's quota (429)
//	decompress  step_decompress.go decode a gzip, br or zstd request body (415/413/400)
//	compression step_compress.go   compress the answer (gzip, br, zstd) for clients that accept it
//	cache       step_cache.go      answer from the response cache; store the upstream's answer
//	proxy       step_proxy.go      forward upstream with retries (forward.go), relay the answer;
//	                               or open a WebSocket tunnel (websocket.go, tunnel.go)
//
// CORS comes before auth: a preflight carries no credentials (Fetch
// 3.3.5), and a page must be able to read a 401 or a 429. Before these,
// every request has had its id, the top-level ip filter, its checks and
// its route (Gateway.serve).
func (s *Snapshot) routeSteps(rt *route, rc *config.Route, auth *authSettings) []step {
	var steps []step
	// Security headers first: they go on whatever answers the route gives,
	// its ip filter's refusals included.
	if h := compileSecurityHeaders(s.Config.SecurityHeadersFor(rc)); h != nil {
		steps = append(steps, securityStep{h})
	}
	if rc.IPFilter != nil {
		steps = append(steps, ipFilterStep{compileIPFilter(rc.IPFilter)})
	}
	if c := s.Config.CORSFor(rc); c != nil {
		rt.cors, s.corsRoutes = true, true
		steps = append(steps, corsStep{s.corsPolicy(c)})
	}
	if a := auth.step(rc); a != nil {
		steps = append(steps, a)
	}
	rl := rc.RateLimit
	if rl == nil {
		rl = s.Config.Limits.Default
	}
	if rl != nil {
		steps = append(steps, s.rateLimitStep(rt, rl))
	}
	if rc.Quota != nil {
		steps = append(steps, s.quotaStep(rt, rc.Quota))
	}
	// After auth and limits: a stranger's body is not decoded.
	if d := s.Config.RequestDecompressionFor(rc); d != nil {
		steps = append(steps, compileDecompression(d, rt, s.clientReadTimeout, &s.res.decoding, s.Config.DecompressionConcurrency()))
	}
	if c := s.Config.CompressionFor(rc); c != nil {
		steps = append(steps, compressStep{compileCompression(c)})
	}
	// The cache is inside compression: it stores the upstream's answer as
	// it came, and its hits are compressed on the way out like any answer.
	if rcc := s.Config.CacheFor(rc); rcc != nil && s.res.cache != nil {
		steps = append(steps, cacheStep{s.compileCache(rt, rcc)})
	}
	return append(steps, &proxyStep{s: s, rt: rt})
}

// corsPolicy compiles c once per snapshot: the routes that take the
// top-level block share one policy.
func (s *Snapshot) corsPolicy(c *config.CORS) *corsPolicy {
	if p := s.corsPolicies[c]; p != nil {
		return p
	}
	if s.corsPolicies == nil {
		s.corsPolicies = map[*config.CORS]*corsPolicy{}
	}
	p := compileCORS(c)
	s.corsPolicies[c] = p
	return p
}
