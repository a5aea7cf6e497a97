package edge

import (
	"bytes"
	"sort"
	"strings"
)

// router finds the route for a request. It is built once per snapshot and
// only read afterwards.
//
// Precedence, most specific first: an exact host, then the longest
// matching *.domain wildcard, then routes with no host; within a host, an
// exact path, then the longest prefix; within a path, the first route (in
// config order) whose methods allow the request. If some route matched the
// path but none the method, the answer is 405 with Allow.
//
// Matching is on the raw request path bytes, the same bytes that are
// forwarded (no percent-decoding, no slash merging), so the gateway and the
// upstream can't disagree about which path was asked for.
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
	exact    map[string][]*Route
	prefixes []prefixRoutes // longest first
}

type prefixRoutes struct {
	prefix string
	routes []*Route
}

func newRouter(routes []*Route) *router {
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

func newHostTable() *hostTable { return &hostTable{exact: map[string][]*Route{}} }

func (t *hostTable) add(rt *Route) {
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
	t.prefixes = append(t.prefixes, prefixRoutes{prefix: rt.prefix, routes: []*Route{rt}})
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
// When it returns nil, pathMatched tells 405 from 404, and allowRoutes are
// the routes whose methods make up the Allow header.
func (r *router) match(host, path, method []byte) (rt *Route, pathMatched []*Route) {
	if len(r.exactHost) > 0 {
		if t := r.exactHost[string(host)]; t != nil {
			if rt, pm := t.match(path, method); rt != nil {
				return rt, nil
			} else if pathMatched == nil {
				pathMatched = pm
			}
		}
	}
	for i := range r.wildcards {
		w := &r.wildcards[i]
		if len(host) > len(w.suffix) && bytes.HasSuffix(host, []byte(w.suffix)) {
			if rt, pm := w.table.match(path, method); rt != nil {
				return rt, nil
			} else if pathMatched == nil {
				pathMatched = pm
			}
		}
	}
	if r.anyHost != nil {
		if rt, pm := r.anyHost.match(path, method); rt != nil {
			return rt, nil
		} else if pathMatched == nil {
			pathMatched = pm
		}
	}
	return nil, pathMatched
}

func (t *hostTable) match(path, method []byte) (*Route, []*Route) {
	var pathMatched []*Route
	if routes := t.exact[string(path)]; routes != nil {
		if rt := byMethod(routes, method); rt != nil {
			return rt, nil
		}
		pathMatched = routes
	}
	for i := range t.prefixes {
		p := &t.prefixes[i]
		if len(path) >= len(p.prefix) && string(path[:len(p.prefix)]) == p.prefix {
			if rt := byMethod(p.routes, method); rt != nil {
				return rt, nil
			}
			if pathMatched == nil {
				pathMatched = p.routes
			}
		}
	}
	return nil, pathMatched
}

func byMethod(routes []*Route, method []byte) *Route {
	for _, rt := range routes {
		if rt.allows(method) {
			return rt
		}
	}
	return nil
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
