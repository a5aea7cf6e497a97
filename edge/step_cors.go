package edge

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// corsPolicy is a CORS policy (config.CORS) compiled: origins in a map and
// a list of wildcard suffixes, every header value precomputed. Section
// numbers are the Fetch standard's (https://fetch.spec.whatwg.org/).
type corsPolicy struct {
	// anyOrigin: "*" without credentials. The answer is the same for every
	// origin, so it carries "Access-Control-Allow-Origin: *" always and no
	// "Vary: Origin" ("CORS protocol and HTTP caches"); otherwise every
	// answer varies on Origin and says so, allowed or not.
	anyOrigin   bool
	exact       map[string]struct{} // "scheme://host[:port]", lower case
	wild        []wildOrigin
	credentials bool

	methods   []byte   // Access-Control-Allow-Methods
	methodSet [][]byte // what a preflight may ask for besides GET, HEAD, POST
	anyMethod bool     // "*": the asked method is echoed (a literal * means nothing with credentials)
	headers   []byte   // Access-Control-Allow-Headers; nil: none
	headerSet [][]byte // lower case
	anyHeader bool     // "*": the asked headers are echoed (Authorization is never covered by a literal *, 4.8)
	expose    []byte   // Access-Control-Expose-Headers; nil: none
	maxAge    []byte   // Access-Control-Max-Age; nil: not sent
	privNet   bool     // answer Access-Control-Request-Private-Network
	varyPre   []byte   // Vary of a preflight's answer
}

// wildOrigin is "scheme://*.domain[:port]": an origin matches when it
// starts with prefix, ends with suffix, and has one or more labels between.
type wildOrigin struct {
	prefix  string // "https://"
	suffix  string // ".example.com" or ".example.com:8443"
	portLen int    // of suffix, the ":8443"
}

// corsStep answers preflights itself and puts the CORS headers on every
// other answer of its route: the upstream's and later steps' refusals, so
// a page can read a 401 or a 429.
type corsStep struct{ p *corsPolicy }

var _ step = corsStep{}

// maxOriginLen bounds an Origin sluice compares: a scheme, a 253-byte DNS
// name and a port fit. Longer ones are not allowed.
const maxOriginLen = 320

var (
	headerOrigin = []byte("Origin")
	headerVary   = []byte("Vary")
	headerACRM   = []byte("Access-Control-Request-Method")
	headerACRH   = []byte("Access-Control-Request-Headers")
	headerACRPN  = []byte("Access-Control-Request-Private-Network")
	headerACAO   = []byte("Access-Control-Allow-Origin")
	headerACAC   = []byte("Access-Control-Allow-Credentials")
	headerACAM   = []byte("Access-Control-Allow-Methods")
	headerACAH   = []byte("Access-Control-Allow-Headers")
	headerACEH   = []byte("Access-Control-Expose-Headers")
	headerACMA   = []byte("Access-Control-Max-Age")
	headerACAPN  = []byte("Access-Control-Allow-Private-Network")
	valueTrue    = []byte("true")
	valueStar    = []byte("*")

	// corsResponseHeaders are every response header the CORS protocol
	// (3.3.3) and Private Network Access define: an upstream's are dropped
	// on a route with a policy, so only sluice's policy reaches the browser.
	corsResponseHeaders = [][]byte{headerACAO, headerACAC, headerACAM, headerACAH, headerACEH, headerACMA, headerACAPN}
	accessControlPrefix = []byte("Access-Control-")

	// 3.3.3: a refused preflight may be answered with 403 and without the
	// CORS headers.
	faultCORSOrigin  = &fault{fasthttp.StatusForbidden, "origin not allowed by cors policy"}
	faultCORSMethod  = &fault{fasthttp.StatusForbidden, "method not allowed by cors policy"}
	faultCORSHeaders = &fault{fasthttp.StatusForbidden, "request headers not allowed by cors policy"}
)

// compileCORS compiles a validated policy.
func compileCORS(c *config.CORS) *corsPolicy {
	p := &corsPolicy{exact: map[string]struct{}{}, credentials: c.AllowCredentials, privNet: c.AllowPrivateNetwork}
	for _, s := range c.AllowOrigins {
		o, _ := config.ParseOrigin(s) // validated
		switch {
		case o.Any:
			p.anyOrigin = true
		case o.Wildcard:
			w := wildOrigin{prefix: o.Scheme + "://", suffix: "." + o.Host}
			if o.Port != "" {
				w.suffix += ":" + o.Port
				w.portLen = 1 + len(o.Port)
			}
			p.wild = append(p.wild, w)
		default:
			p.exact[o.String()] = struct{}{}
		}
	}
	methods := c.AllowMethods
	if len(methods) == 0 {
		methods = config.DefaultCORSMethods
	}
	if methods[0] == "*" {
		p.anyMethod = true
	} else {
		p.methods = []byte(strings.Join(methods, ", "))
		for _, m := range methods {
			p.methodSet = append(p.methodSet, []byte(m))
		}
	}
	switch {
	case len(c.AllowHeaders) == 1 && c.AllowHeaders[0] == "*":
		p.anyHeader = true
	case len(c.AllowHeaders) > 0:
		p.headers = []byte(strings.Join(c.AllowHeaders, ", "))
		for _, h := range c.AllowHeaders {
			p.headerSet = append(p.headerSet, []byte(strings.ToLower(h)))
		}
	}
	if len(c.ExposeHeaders) > 0 {
		p.expose = []byte(strings.Join(c.ExposeHeaders, ", "))
	}
	if d := c.MaxAge.D(); d > 0 {
		p.maxAge = []byte(strconv.FormatInt(int64(d.Seconds()), 10))
	}
	vary := "Access-Control-Request-Method, Access-Control-Request-Headers"
	if !p.anyOrigin {
		vary = "Origin, " + vary
	}
	if p.privNet {
		vary += ", Access-Control-Request-Private-Network"
	}
	p.varyPre = []byte(vary)
	return p
}

func (c corsStep) serve(x *exchange) {
	p, h := c.p, &x.ctx.Request.Header
	origin := h.PeekBytes(headerOrigin)
	// 3.3.2: a preflight is an OPTIONS request with Origin and
	// Access-Control-Request-Method. It is answered here: the upstream
	// never sees it (findRoute routed it by the method it asks about).
	if len(origin) > 0 && h.IsOptions() {
		if method := h.PeekBytes(headerACRM); len(method) > 0 {
			p.preflight(x, origin, method)
			return
		}
	}
	allowed := len(origin) > 0 && p.allowsOrigin(origin)
	if allowed && !p.anyOrigin {
		// origin is valid only until the request's headers change
		// (fasthttp's Peek contract), and later steps change them: keep a
		// copy to echo (allowsOrigin refused anything longer).
		origin = append(x.originBuf[:0], origin...)
	}
	x.next()
	r := &x.ctx.Response.Header
	dropUpstreamCORS(r)
	switch {
	case p.anyOrigin:
		r.SetCanonical(headerACAO, valueStar)
	case allowed:
		r.SetCanonical(headerACAO, origin)
		if p.credentials {
			r.SetCanonical(headerACAC, valueTrue)
		}
	}
	if (allowed || p.anyOrigin) && p.expose != nil {
		r.SetCanonical(headerACEH, p.expose)
	}
	if !p.anyOrigin {
		addVary(r, headerOrigin)
	}
}

// preflight answers a CORS-preflight request (4.8 is what the browser
// does with the answer): 204 with the Access-Control-Allow-* headers when
// the origin, the method and every requested header are allowed, else 403
// without them.
func (p *corsPolicy) preflight(x *exchange, origin, method []byte) {
	h := &x.ctx.Request.Header
	asked := h.PeekBytes(headerACRH)
	switch {
	case !p.allowsOrigin(origin):
		x.fail(faultCORSOrigin)
	case !p.allowsMethod(method):
		x.fail(faultCORSMethod)
	case !p.allowsHeaders(asked):
		x.fail(faultCORSHeaders)
	default:
		// Every value set here is copied into the response at once, before
		// anything edits the request: the aliases are safe.
		resp := &x.ctx.Response
		resp.SetStatusCode(fasthttp.StatusNoContent)
		r := &resp.Header
		r.SetCanonical(headerRequestID, x.id)
		if p.anyOrigin {
			r.SetCanonical(headerACAO, valueStar)
		} else {
			r.SetCanonical(headerACAO, origin)
		}
		if p.credentials {
			r.SetCanonical(headerACAC, valueTrue)
		}
		if p.anyMethod {
			r.SetCanonical(headerACAM, method)
		} else {
			r.SetCanonical(headerACAM, p.methods)
		}
		switch {
		case p.anyHeader && len(asked) > 0:
			r.SetCanonical(headerACAH, asked)
		case p.headers != nil:
			r.SetCanonical(headerACAH, p.headers)
		}
		if p.maxAge != nil {
			r.SetCanonical(headerACMA, p.maxAge)
		}
		// Private Network Access: without the opt-in the header is left
		// out and the browser decides (it refuses only when enforcing).
		if p.privNet && string(h.PeekBytes(headerACRPN)) == "true" {
			r.SetCanonical(headerACAPN, valueTrue)
		}
	}
	x.ctx.Response.Header.SetCanonical(headerVary, p.varyPre)
}

// allowsOrigin compares the Origin case-insensitively (browsers send it in
// lower case; RFC 6454 6.1) with the exact origins, then the wildcards.
func (p *corsPolicy) allowsOrigin(origin []byte) bool {
	if p.anyOrigin {
		return true
	}
	if len(origin) > maxOriginLen {
		return false
	}
	var buf [maxOriginLen]byte
	o := buf[:len(origin)]
	for i, c := range origin {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		o[i] = c
	}
	if _, ok := p.exact[string(o)]; ok {
		return true
	}
	for _, w := range p.wild {
		if len(o) > len(w.prefix)+len(w.suffix) && len(o)-len(w.prefix)-w.portLen <= maxHostLen &&
			string(o[:len(w.prefix)]) == w.prefix && string(o[len(o)-len(w.suffix):]) == w.suffix &&
			validLabels(o[len(w.prefix):len(o)-len(w.suffix)]) {
			return true
		}
	}
	return false
}

// maxHostLen and maxLabelLen are DNS's limits (RFC 1035 2.3.4).
const maxHostLen, maxLabelLen = 253, 63

// validLabels reports whether b is one or more DNS labels (lower-case
// letters, digits, '-'; 1 to 63 bytes) joined by dots: what may stand for
// the "*" of a wildcard origin. Anything else (a '/', '@', ':' or an empty
// label) is not a subdomain.
func validLabels(b []byte) bool {
	label := 0
	for _, c := range b {
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			if label++; label > maxLabelLen {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

// allowsMethod: GET, HEAD and POST are CORS-safelisted (2.2.1) and never
// refused by the browser (4.8), so not here either.
func (p *corsPolicy) allowsMethod(m []byte) bool {
	switch string(m) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPost:
		return true
	}
	if p.anyMethod {
		return true
	}
	for _, a := range p.methodSet {
		if string(a) == string(m) { // methods are case-sensitive
			return true
		}
	}
	return false
}

// allowsHeaders checks each name of Access-Control-Request-Headers (a
// comma-separated list, 3.3.4) against the allowed ones, ignoring case.
func (p *corsPolicy) allowsHeaders(asked []byte) bool {
	if p.anyHeader {
		return true
	}
	for len(asked) > 0 {
		var name []byte
		if i := bytes.IndexByte(asked, ','); i >= 0 {
			name, asked = asked[:i], asked[i+1:]
		} else {
			name, asked = asked, nil
		}
		name = bytes.Trim(name, " \t")
		if len(name) == 0 {
			continue
		}
		ok := false
		for _, a := range p.headerSet {
			if bytes.EqualFold(a, name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// dropUpstreamCORS removes the upstream's CORS headers, so an upstream
// can't widen the route's policy. One pass over the names looks for any
// first: usually there is none.
func dropUpstreamCORS(r *fasthttp.ResponseHeader) {
	found := false
	for k := range r.All() {
		if len(k) > len(accessControlPrefix) && string(k[:len(accessControlPrefix)]) == string(accessControlPrefix) {
			found = true
			break
		}
	}
	if found {
		for _, k := range corsResponseHeaders {
			r.DelBytes(k)
		}
	}
}

// addVary adds name to the answer's Vary (RFC 9110 12.5.5), keeping what
// the upstream listed: unless some Vary line already has it, or is "*".
// Several Vary lines become one.
func addVary(r *fasthttp.ResponseHeader, name []byte) {
	lines := r.PeekAll("Vary")
	if len(lines) == 0 {
		r.SetCanonical(headerVary, name)
		return
	}
	for _, l := range lines {
		if bytes.Equal(bytes.TrimSpace(l), valueStar) || hasToken(l, name) {
			return
		}
	}
	// lines alias the header that is about to change: join them first.
	buf := bytebufferpool.Get()
	for _, l := range lines {
		buf.B = append(append(buf.B, bytes.TrimSpace(l)...), commaSpace...)
	}
	buf.B = append(buf.B, name...)
	r.DelBytes(headerVary)
	r.SetCanonical(headerVary, buf.B)
	bytebufferpool.Put(buf)
}

// hasToken reports whether a comma-separated list holds tok (ignoring case).
func hasToken(list, tok []byte) bool {
	for len(list) > 0 {
		var t []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			t, list = list[:i], list[i+1:]
		} else {
			t, list = list, nil
		}
		if bytes.EqualFold(bytes.Trim(t, " \t"), tok) {
			return true
		}
	}
	return false
}
