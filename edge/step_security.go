package edge

import (
	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/fasthttp"
)

// securityHeaders is a security_headers result (config.SecurityHeadersFor)
// made ready to apply: names canonical and values as bytes, so applying
// them is a scan of the answer's header names and a few SetCanonical
// calls. A route's copy runs as a step; the top-level one also goes on
// the answers sluice gives before a route is chosen (Gateway.ServeHTTP).
type securityHeaders struct {
	set  [][2][]byte // name, value: on every answer
	hsts []byte      // Strict-Transport-Security, on TLS answers only; nil: none
	// owned lists every name set (HSTS included) or removed: an
	// upstream's copies are deleted first, so a duplicate line from the
	// upstream can't survive next to sluice's value.
	owned [][]byte
}

// securityStep applies a route's security headers to whatever answers
// the request: the upstream's response or a later step's refusal.
type securityStep struct{ h *securityHeaders }

var _ step = securityStep{}

var headerHSTS = []byte("Strict-Transport-Security")

// compileSecurityHeaders returns nil when r sets and removes nothing.
func compileSecurityHeaders(r config.SecurityResult) *securityHeaders {
	if r.Empty() {
		return nil
	}
	sh := &securityHeaders{}
	for _, hv := range r.Set {
		name := canonicalHeader(hv.Name)
		sh.set = append(sh.set, [2][]byte{name, []byte(hv.Value)})
		sh.owned = append(sh.owned, name)
	}
	if r.HSTS != "" {
		sh.hsts = []byte(r.HSTS)
		sh.owned = append(sh.owned, headerHSTS)
	}
	for _, name := range r.Remove {
		sh.owned = append(sh.owned, canonicalHeader(name))
	}
	return sh
}

func (s securityStep) serve(x *exchange) {
	x.next()
	s.h.apply(x.ctx)
}

// apply sets the headers on the response being built. HSTS goes on TLS
// connections only (RFC 6797 7.2: a host must not send it over plain
// HTTP, where an attacker could strip or forge it anyway).
func (sh *securityHeaders) apply(ctx *fasthttp.RequestCtx) {
	if sh == nil {
		return
	}
	h := &ctx.Response.Header
	sh.clear(h)
	for _, kv := range sh.set {
		h.SetCanonical(kv[0], kv[1])
	}
	if sh.hsts != nil && ctx.IsTLS() {
		h.SetCanonical(headerHSTS, sh.hsts)
	}
}

// clear deletes the owned headers the answer has. Most answers have few
// of them (an upstream's Server), so one pass over the names finds which;
// only those are deleted (each delete is a scan of its own).
func (sh *securityHeaders) clear(h *fasthttp.ResponseHeader) {
	var found uint64 // bit i: owned[i] is present (the first 64; beyond, found in the catch-all bit)
	for k := range h.All() {
		for i, name := range sh.owned {
			if len(k) == len(name) && string(k) == string(name) {
				found |= 1 << min(i, 63)
			}
		}
	}
	for i := 0; found != 0 && i < len(sh.owned); i++ {
		if found&(1<<min(i, 63)) != 0 {
			h.DelBytes(sh.owned[i])
		}
	}
}

// canonicalHeader is name as fasthttp stores it ("x-frame-options" ->
// "X-Frame-Options"), so SetCanonical and comparisons with the parsed
// names need no normalising per request.
func canonicalHeader(name string) []byte {
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return b
}
