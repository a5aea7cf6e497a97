package edge

import (
	"bytes"
	"iter"

	"github.com/sluicegw/sluice/edge/pathnorm"
	"github.com/valyala/fasthttp"
)

var (
	faultVersion         = &fault{fasthttp.StatusHTTPVersionNotSupported, "http version not supported"}
	faultBadMethod       = &fault{fasthttp.StatusBadRequest, "bad method"}
	faultTrace           = &fault{fasthttp.StatusMethodNotAllowed, "method not allowed"}
	faultFolded          = &fault{fasthttp.StatusBadRequest, "obsolete line folding"}
	faultHost            = &fault{fasthttp.StatusBadRequest, "missing or invalid host"}
	faultUnderscore      = &fault{fasthttp.StatusBadRequest, "header name with underscore"}
	faultBadPath         = &fault{fasthttp.StatusBadRequest, "bad request path"}
	faultAmbiguousLength = &fault{fasthttp.StatusBadRequest, "both content-length and transfer-encoding"}
)

// The checks every request passes before it is routed. Each answers the
// request itself and returns false when it refuses it. fasthttp has already
// refused what it can't parse (serverErrorHandler answers those).

// checkHead holds the request head to what RFC 9110 and 9112 allow,
// beyond what fasthttp's parser already refuses. A refusal that leaves the
// framing of the rest of the connection in doubt is followed by a
// lingering close: the answer is readable, the connection not reused.
func (x *exchange) checkHead() bool {
	h := &x.ctx.Request.Header
	// RFC 9112 2.3 / RFC 9110 15.6.6: sluice speaks HTTP/1.1 and 1.0 only;
	// fasthttp accepts any HTTP/x.y and would proxy it as 1.1.
	if p := h.Protocol(); string(p) != "HTTP/1.1" && string(p) != "HTTP/1.0" {
		x.fail(faultVersion)
		lingerClose(x.ctx)
		return false
	}
	// RFC 9110 9.1: methods are case-sensitive. Every standard method is
	// upper case; a lower-case "get" is refused (as nginx does) rather than
	// routed by one spelling and served by another.
	for _, c := range h.Method() {
		if 'a' <= c && c <= 'z' {
			x.fail(faultBadMethod)
			return false
		}
	}
	// RFC 9110 9.3.8: TRACE echoes the request, credentials included.
	if h.IsTrace() && !x.snap.allowTrace {
		x.fail(faultTrace)
		x.ctx.Response.Header.Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		return false
	}
	var folded, underscore bool
	hosts, lengths := 0, 0
	raw := h.RawHeaders()
	for line := range headerLines(raw) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			folded = true // RFC 9112 5.2: obs-fold
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		name := line[:i]
		switch {
		case bytes.EqualFold(name, []byte("host")):
			hosts++
		case bytes.EqualFold(name, []byte("content-length")):
			lengths++
		case bytes.EqualFold(name, []byte("forwarded")), bytes.EqualFold(name, []byte("x-real-ip")):
			x.claimsAddr = true
		case bytes.IndexByte(name, '_') >= 0:
			underscore = true
		}
	}
	// RFC 9112 5.2: a server that receives obs-fold in a request MUST
	// either reject it with 400 or replace it; the framing of a folded
	// Content-Length can't be trusted, so sluice rejects.
	if folded {
		x.fail(faultFolded)
		lingerClose(x.ctx)
		return false
	}
	// RFC 9112 6.3: a message with both Transfer-Encoding and
	// Content-Length is a smuggling attempt or a broken client; refuse it
	// rather than guess which framing the upstream will believe.
	if lengths > 0 && h.ContentLength() == -1 {
		x.fail(faultAmbiguousLength)
		lingerClose(x.ctx)
		return false
	}
	// RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, or with more
	// than one, or with an invalid one. HTTP/1.0 may omit it.
	if hosts > 1 || (hosts == 0 && h.IsHTTP11()) || !validHost(h.Host()) {
		x.fail(faultHost)
		return false
	}
	if underscore {
		switch x.snap.underscores {
		case underscoresReject:
			x.fail(faultUnderscore)
			return false
		case underscoresDrop:
			dropUnderscoreHeaders(h, raw)
		}
	}
	return true
}

// validHost: a Host value is a reg-name, IPv4 or IP-literal with an
// optional port (RFC 3986 3.2.2): no spaces, slashes, "@", "?" or "#",
// nothing that could smuggle a path or credentials into a URL built from
// it. Empty is allowed (HTTP/1.0).
func validHost(host []byte) bool {
	for _, c := range host {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == '~', c == ':', c == '[', c == ']', c == '%':
		case c == '!', c == '$', c == '&', c == '\'', c == '(', c == ')', c == '*', c == '+', c == ',', c == ';', c == '=':
		default:
			return false
		}
	}
	return true
}

// dropUnderscoreHeaders removes every header whose name has an underscore
// (server.headers_with_underscores: drop).
func dropUnderscoreHeaders(h *fasthttp.RequestHeader, raw []byte) {
	for name := range headerNames(raw) {
		if bytes.IndexByte(name, '_') >= 0 {
			h.DelBytes(name)
		}
	}
}

// checkPath splits the request target once into path and query, and
// normalises the path (pathnorm: RFC 3986 section 6) into the exchange's
// own buffer: that path is what the routes match and what is forwarded,
// so sluice and the upstream can't disagree about which path was asked
// for. A path that can't be normalised safely gets 400 naming why.
func (x *exchange) checkPath() bool {
	h := &x.ctx.Request.Header
	uri := h.RequestURI()
	raw, query := splitURI(uri)
	if len(raw) == 0 || raw[0] != '/' {
		x.fail(faultBadPath)
		return false
	}
	// RFC 9112 3.2.2: with an absolute-form target, the target's authority
	// is the host, whatever Host says; routing and the upstream use it.
	if uri[0] != '/' {
		authority := absoluteAuthority(uri)
		if len(authority) == 0 || bytes.IndexByte(authority, '@') >= 0 || !validHost(authority) {
			x.fail(faultHost) // RFC 9110 4.2.4: userinfo is refused
			return false
		}
		h.SetHostBytes(authority)
	}
	s := x.snap
	opts := s.pathOpts
	if s.slashOverrides {
		// A route decides what its encoded slashes get: keep them until
		// the route is known (applySlashAction).
		opts.EscapedSlashes = pathnorm.Keep
	}
	path, info, err := pathnorm.Normalize(x.pathBuf[:0], raw, opts)
	if err != nil {
		x.fail(pathFault(err))
		return false
	}
	if !info.Changed {
		path = append(x.pathBuf[:0], path...) // path is raw: copy it, the proxy rewrites the URI
	}
	x.path, x.pathBuf, x.rawPath, x.pathInfo = path, path[:0], raw, info
	x.query = query
	return true
}

// applySlashAction applies the matched route's escaped_slashes when routes
// differ in it (checkPath normalised in keep mode then): reject answers
// 400, keep forwards the path as it is, decode decodes %2F and %5C into
// "/", and the decoded path must still match the same route.
func (x *exchange) applySlashAction() bool {
	if !x.snap.slashOverrides || !x.pathInfo.Escaped() {
		return true
	}
	switch x.route.slashes {
	case pathnorm.Reject:
		if err := x.pathInfo.RejectErr(); err != nil {
			x.fail(pathFault(err))
			return false
		}
	case pathnorm.Decode:
		opts := x.snap.pathOpts
		opts.EscapedSlashes = pathnorm.Decode
		path, _, err := pathnorm.Normalize(x.decodedBuf[:0], x.rawPath, opts)
		if err != nil {
			x.fail(pathFault(err))
			return false
		}
		h := &x.ctx.Request.Header
		var hostBuf [256]byte
		if rt, _ := x.snap.router.match(normalizeHost(hostBuf[:0], h.Host()), path, x.matchMethod); rt != x.route {
			x.fail(pathFault(pathnorm.ErrEncodedSlash))
			return false
		}
		x.path, x.decodedBuf = path, path[:0]
	}
	return true
}

// pathFaults answer each pathnorm reason with its own constant message.
var pathFaults = func() map[pathnorm.Error]*fault {
	m := map[pathnorm.Error]*fault{}
	for e := pathnorm.ErrNotOriginForm; e <= pathnorm.ErrAboveRoot; e++ {
		m[e] = &fault{fasthttp.StatusBadRequest, e.String()}
	}
	return m
}()

func pathFault(err error) *fault {
	if e, ok := err.(pathnorm.Error); ok && pathFaults[e] != nil {
		return pathFaults[e]
	}
	return faultBadPath
}

// splitURI returns the path and query of a request target in origin form
// ("/a?b") or absolute form ("http://h/a?b"); the path is empty for
// anything else ("*", authority form).
func splitURI(uri []byte) (path, query []byte) {
	if len(uri) > 0 && uri[0] != '/' {
		i := bytes.Index(uri, []byte("://"))
		if i < 0 {
			return nil, nil
		}
		rest := uri[i+3:]
		j := bytes.IndexByte(rest, '/')
		if j < 0 {
			return []byte("/"), nil
		}
		uri = rest[j:]
	}
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i+1:]
	}
	return uri, nil
}

// absoluteAuthority is the authority of an absolute-form target
// ("http://a.example:8080/x" gives "a.example:8080").
func absoluteAuthority(uri []byte) []byte {
	i := bytes.Index(uri, []byte("://"))
	if i < 0 {
		return nil
	}
	rest := uri[i+3:]
	if j := bytes.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// headerNames yields the name of each line of a raw header block (the
// bytes before the colon, trailing blanks trimmed).
func headerNames(raw []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for line := range headerLines(raw) {
			if i := bytes.IndexByte(line, ':'); i > 0 && !yield(bytes.TrimRight(line[:i], " \t")) {
				return
			}
		}
	}
}

// headerLines yields each line of a raw header block, without its line end.
func headerLines(raw []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(raw) > 0 {
			line := raw
			if i := bytes.IndexByte(raw, '\n'); i >= 0 {
				line, raw = raw[:i], raw[i+1:]
			} else {
				raw = nil
			}
			if !yield(bytes.TrimSuffix(line, []byte("\r"))) {
				return
			}
		}
	}
}
