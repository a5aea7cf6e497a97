package edge

import (
	"bytes"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"
)

var faultNoRoute, faultMethod = &fault{fasthttp.StatusNotFound, "no route"}, &fault{fasthttp.StatusMethodNotAllowed, "method not allowed"}

// findRoute picks the request's route from the snapshot's router: 404 when
// no route's path matches, 405 with Allow when one does but not for this
// method.
func (x *exchange) findRoute() bool {
	h := &x.ctx.Request.Header
	var hostBuf [256]byte
	host := normalizeHost(hostBuf[:0], h.Host())
	// A CORS preflight (Fetch 3.3.2: OPTIONS with Origin and
	// Access-Control-Request-Method) asks about another method: it goes to
	// the route that would take that method when that route has a CORS
	// policy to answer it (step_cors.go). Any other OPTIONS is routed as
	// itself.
	if x.snap.corsRoutes && h.IsOptions() {
		if m := h.PeekBytes(headerACRM); len(m) > 0 && len(h.PeekBytes(headerOrigin)) > 0 {
			if rt, _ := x.snap.router.match(host, x.path, m, x); rt != nil && rt.cors {
				x.route, x.matchMethod = rt, m
				return true
			}
		}
	}
	x.matchMethod = h.Method()
	rt, pathMatched := x.snap.router.match(host, x.path, x.matchMethod, x)
	switch {
	case rt != nil:
		x.route = rt
		return true
	case pathMatched != nil:
		x.fail(faultMethod)
		x.ctx.Response.Header.SetBytesV("Allow", allowHeader(pathMatched))
	default:
		x.fail(faultNoRoute)
	}
	return false
}

// allowHeader is the Allow value for routes that matched a path: each one's
// methods, once, in order.
func allowHeader(routes []*route) []byte {
	if len(routes) == 1 {
		return routes[0].allowHdr
	}
	seen := map[string]bool{}
	var out []byte
	for _, rt := range routes {
		for _, m := range bytes.Split(rt.allowHdr, []byte(", ")) {
			if len(m) == 0 || seen[string(m)] {
				continue
			}
			seen[string(m)] = true
			if len(out) > 0 {
				out = append(out, ", "...)
			}
			out = append(out, m...)
		}
	}
	return out
}

// router finds the route for a request. It is built once per snapshot and
// only read afterwards.
//
// Precedence, most specific first: an exact host, then the longest
// matching *.domain wildcard, then routes with no host; within a host, an
// exact path, then the regex routes (config order), then the longest
// prefix; within a path, the first route (in config order) whose
// conditions (headers, query, cookies) hold and whose methods allow the
// request. If some route matched the path and conditions but none the
// method, the answer is 405 with Allow. config.validate refuses a route
// an earlier one always takes.
//
// Matching is on the normalised path (paths.go, pathnorm), the same path
// that is forwarded, so the gateway and the upstream can't disagree about
// which path was asked for.
type router struct {
	exactHost map[string]*hostTable
	wildcards []wildcardHost // longest suffix first
	anyHost   *hostTable
}

type wildcardHost struct {
	suffix string // ".example.com"
	table  *hostTable
}

type hostTable struct {
	exact    map[string][]*route
	regexes  []*route       // config order
	prefixes []prefixRoutes // longest first
}

type prefixRoutes struct {
	prefix string
	routes []*route
}

func newRouter(routes []*route) *router {
	r := &router{exactHost: map[string]*hostTable{}}
	wild := map[string]*hostTable{}
	for _, rt := range routes {
		host := strings.ToLower(rt.host)
		var t *hostTable
		switch {
		case host == "":
			if r.anyHost == nil {
				r.anyHost = newHostTable()
			}
			t = r.anyHost
		case strings.HasPrefix(host, "*."):
			suffix := host[1:]
			if wild[suffix] == nil {
				wild[suffix] = newHostTable()
			}
			t = wild[suffix]
		default:
			if r.exactHost[host] == nil {
				r.exactHost[host] = newHostTable()
			}
			t = r.exactHost[host]
		}
		t.add(rt)
	}
	for suffix, t := range wild {
		r.wildcards = append(r.wildcards, wildcardHost{suffix, t})
	}
	sort.Slice(r.wildcards, func(i, j int) bool {
		a, b := r.wildcards[i].suffix, r.wildcards[j].suffix
		return len(a) > len(b) || (len(a) == len(b) && a < b)
	})
	for _, t := range r.tables() {
		sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].prefix) > len(t.prefixes[j].prefix) })
	}
	return r
}

func newHostTable() *hostTable { return &hostTable{exact: map[string][]*route{}} }

func (t *hostTable) add(rt *route) {
	if rt.regex != nil {
		t.regexes = append(t.regexes, rt)
		return
	}
	if rt.exactPath != "" {
		t.exact[rt.exactPath] = append(t.exact[rt.exactPath], rt)
		return
	}
	for i := range t.prefixes {
		if t.prefixes[i].prefix == rt.prefix {
			t.prefixes[i].routes = append(t.prefixes[i].routes, rt)
			return
		}
	}
	t.prefixes = append(t.prefixes, prefixRoutes{prefix: rt.prefix, routes: []*route{rt}})
}

func (r *router) tables() []*hostTable {
	var out []*hostTable
	for _, t := range r.exactHost {
		out = append(out, t)
	}
	for _, w := range r.wildcards {
		out = append(out, w.table)
	}
	if r.anyHost != nil {
		out = append(out, r.anyHost)
	}
	return out
}

// match returns the route for host (lower-case, no port), path and method.
// When it returns nil, pathMatched lists the routes whose path matched
// (their methods make up the Allow header of a 405), or nil for a 404.
//
// x is the request, for the routes with conditions; nil (benchmarks) never
// satisfies one.
func (r *router) match(host, path, method []byte, x *exchange) (rt *route, pathMatched []*route) {
	if len(r.exactHost) > 0 {
		if t := r.exactHost[string(host)]; t != nil {
			if rt, pm := t.match(path, method, x); rt != nil {
				return rt, nil
			} else if pathMatched == nil {
				pathMatched = pm
			}
		}
	}
	for i := range r.wildcards {
		w := &r.wildcards[i]
		if len(host) > len(w.suffix) && bytes.HasSuffix(host, []byte(w.suffix)) {
			if rt, pm := w.table.match(path, method, x); rt != nil {
				return rt, nil
			} else if pathMatched == nil {
				pathMatched = pm
			}
		}
	}
	if r.anyHost != nil {
		if rt, pm := r.anyHost.match(path, method, x); rt != nil {
			return rt, nil
		} else if pathMatched == nil {
			pathMatched = pm
		}
	}
	return nil, pathMatched
}

func (t *hostTable) match(path, method []byte, x *exchange) (*route, []*route) {
	var pathMatched []*route
	if routes := t.exact[string(path)]; routes != nil {
		rt, hit := pick(routes, method, x)
		if rt != nil {
			return rt, nil
		}
		if hit {
			pathMatched = routes
		}
	}
	for _, r := range t.regexes {
		// Go's regexp: linear time, no allocation for Match; see README
		// "Routing" for its cost.
		if r.regex.Match(path) && r.condsMatch(x) {
			if r.allows(method) {
				return r, nil
			}
			if pathMatched == nil {
				pathMatched = r.self
			}
		}
	}
	for i := range t.prefixes {
		p := &t.prefixes[i]
		if len(path) >= len(p.prefix) && string(path[:len(p.prefix)]) == p.prefix {
			rt, hit := pick(p.routes, method, x)
			if rt != nil {
				return rt, nil
			}
			if hit && pathMatched == nil {
				pathMatched = p.routes
			}
		}
	}
	return nil, pathMatched
}

// pick is the first of routes (one path's, in config order) whose
// conditions hold and whose methods allow the request; hit reports whether
// any route's conditions held (then a 405 is due when none allows the
// method).
func pick(routes []*route, method []byte, x *exchange) (rt *route, hit bool) {
	for _, r := range routes {
		if !r.condsMatch(x) {
			continue
		}
		hit = true
		if r.allows(method) {
			return r, true
		}
	}
	return nil, hit
}

// normalizeHost lower-cases the Host header and drops its port into buf,
// without allocating. A Host longer than buf can't match any route.
func normalizeHost(buf []byte, host []byte) []byte {
	if len(host) > 0 && host[0] == '[' { // [::1]:8080
		if i := bytes.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if len(host) > cap(buf) {
		return buf[:0]
	}
	out := buf[:len(host)]
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
