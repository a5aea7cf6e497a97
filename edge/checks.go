package edge

import (
	"bytes"
	"iter"

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
	faultCoding          = &fault{fasthttp.StatusNotImplemented, "unsupported transfer-encoding"}
	faultFragment        = &fault{fasthttp.StatusBadRequest, "fragment in request target"}
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
	raw := h.RawHeaders()
	hs := &x.head // scanned by serve, first thing (x.scanHead)
	// A request built in memory has no raw block: then every hop-by-hop
	// name is deleted.
	x.hopByHop = hs.hopByHop || len(raw) == 0
	x.claimsAddr = hs.claimsAddr || hs.xff > 1 || hs.xfp > 1 || hs.xfh > 1
	// RFC 9112 5.2: a server that receives obs-fold in a request MUST
	// either reject it with 400 or replace it; the framing of a folded
	// Content-Length can't be trusted, so sluice rejects.
	if hs.folded {
		x.fail(faultFolded)
		lingerClose(x.ctx)
		return false
	}
	// RFC 9112 6.3: a message with both Transfer-Encoding and
	// Content-Length is a smuggling attempt or a broken client; refuse it
	// rather than guess which framing the upstream will believe.
	if hs.lengths > 0 && h.ContentLength() == -1 {
		x.fail(faultAmbiguousLength)
		lingerClose(x.ctx)
		return false
	}
	// RFC 9112 6.1: chunked is the only transfer coding sluice reads; any
	// other (identity is gone from HTTP/1.1) can't be framed. fasthttp
	// ignores the ones it does not know and trusts Content-Length.
	if hs.codings > 0 && h.ContentLength() != -1 {
		x.fail(faultCoding)
		lingerClose(x.ctx)
		return false
	}
	// RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, or with more
	// than one, or with an invalid one. HTTP/1.0 may omit it.
	if hs.hosts > 1 || (hs.hosts == 0 && h.IsHTTP11()) || !validHost(h.Host()) {
		x.fail(faultHost)
		return false
	}
	if hs.underscore {
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

// scanHead reads the request's raw header block once, before anything
// looks at or changes a header.
func (x *exchange) scanHead() {
	raw := x.ctx.Request.Header.RawHeaders()
	x.head, x.rawHead = scanHead(raw, x.snap.identityHeaders), len(raw) > 0
}

// mayHave: the request may carry a header the scan flagged seen. A
// request built in memory (tests, no raw block) may carry anything.
func (x *exchange) mayHave(seen bool) bool { return seen || !x.rawHead }

// headScan is what one pass over the raw header block finds.
type headScan struct {
	folded                  bool // a line starts with a blank: obs-fold
	underscore              bool // a name has "_"
	hopByHop                bool // a hop-by-hop name (headers.go): the proxy step deletes them only then
	claimsAddr              bool // Forwarded or X-Real-IP
	hosts, lengths, codings int
	contentCodings          int // Content-Encoding lines: the decompress step refuses more than one
	xff, xfp, xfh           int // lines of each X-Forwarded-* name: more than one each is refused from untrusted peers
	// Names sluice peeks at, replaces or deletes on every request. Each
	// look-up by name costs a key normalisation and a scan of all the
	// headers; when the raw block shows the name is not there, the
	// look-up is skipped (exchange.mayHave).
	requestID, traceparent, tracestate, via bool
	identity                                bool // one of the snapshot's identity headers (step_auth.go)
	consoleCookie                           bool // a Cookie line holds the admin console's cookie name
}

// scanHead reads the names of a raw header block once, as received (one
// pass over bytes, no normalisation, no allocation). Names are told apart
// by length first: most lines match none. identity are the snapshot's
// identity header names.
func scanHead(raw []byte, identity [][]byte) (hs headScan) {
	for len(raw) > 0 {
		var line []byte
		line, raw = cutLine(raw)
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			hs.folded = true // RFC 9112 5.2: obs-fold
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		name := bytes.TrimRight(line[:i], " \t")
		switch len(name) {
		case 3:
			hs.via = hs.via || bytes.EqualFold(name, headerVia)
		case 4:
			if bytes.EqualFold(name, []byte("host")) {
				hs.hosts++
			}
		case 6:
			if bytes.EqualFold(name, []byte("cookie")) && bytes.Contains(line[i+1:], consoleCookieName) {
				hs.consoleCookie = true
			}
		case 10:
			hs.tracestate = hs.tracestate || bytes.EqualFold(name, headerTracestate)
		case 12:
			hs.requestID = hs.requestID || bytes.EqualFold(name, headerRequestID)
		case 9:
			if bytes.EqualFold(name, headerFwd) || bytes.EqualFold(name, headerXRIP) {
				hs.claimsAddr = true
			}
		case 14:
			if bytes.EqualFold(name, []byte("content-length")) {
				hs.lengths++
			} else if bytes.EqualFold(name, headerXOriginalURL) || bytes.EqualFold(name, headerTrueClientIP) {
				hs.claimsAddr = true
			}
		case 11, 13, 18:
			if bytes.EqualFold(name, headerXClientIP) || bytes.EqualFold(name, headerXRewriteURL) || bytes.EqualFold(name, headerXFPrefix) {
				hs.claimsAddr = true
			} else if bytes.EqualFold(name, headerTraceparent) {
				hs.traceparent = true
			}
		case 15:
			if bytes.EqualFold(name, headerXFF) {
				hs.xff++
			}
		case 16:
			if bytes.EqualFold(name, headerXFH) {
				hs.xfh++
			} else if bytes.EqualFold(name, headerContentEncoding) {
				hs.contentCodings++
			} else if bytes.EqualFold(name, headerXFPort) {
				hs.claimsAddr = true
			}
		case 17:
			if bytes.EqualFold(name, []byte("transfer-encoding")) {
				hs.codings++
			} else if bytes.EqualFold(name, headerXFP) {
				hs.xfp++
			}
		}
		if !hs.hopByHop && isHopByHopName(name) {
			hs.hopByHop = true
		}
		if !hs.identity {
			for _, n := range identity {
				if len(n) == len(name) && bytes.EqualFold(n, name) {
					hs.identity = true
				}
			}
		}
		if bytes.IndexByte(name, '_') >= 0 {
			hs.underscore = true
		}
	}
	return hs
}

// validHost: a Host value is a reg-name, IPv4 or IP-literal with an
// optional port (RFC 3986 3.2.2): no spaces, slashes, "@", "?" or "#",
// nothing that could smuggle a path or credentials into a URL built from
// it. Empty is allowed (HTTP/1.0).
func validHost(host []byte) bool {
	for _, c := range host {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

// hostByte: the bytes validHost accepts, looked up rather than compared
// (it runs on every request).
var hostByte = func() (t [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == '~', c == ':', c == '[', c == ']', c == '%':
		case c == '!', c == '$', c == '&', c == '\'', c == '(', c == ')', c == '*', c == '+', c == ',', c == ';', c == '=':
		default:
			continue
		}
		t[c] = true
	}
	return t
}()

// dropUnderscoreHeaders removes every header whose name has an underscore
// (server.headers_with_underscores: drop).
func dropUnderscoreHeaders(h *fasthttp.RequestHeader, raw []byte) {
	for name := range headerNames(raw) {
		if bytes.IndexByte(name, '_') >= 0 {
			h.DelBytes(name)
		}
	}
}

// headerNames yields the name of each line of a raw header block (the
// bytes before the colon, trailing blanks trimmed).
func headerNames(raw []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(raw) > 0 {
			var line []byte
			line, raw = cutLine(raw)
			if i := bytes.IndexByte(line, ':'); i > 0 && !yield(bytes.TrimRight(line[:i], " \t")) {
				return
			}
		}
	}
}

// cutLine splits a raw header block after its first line (the '\n' is
// dropped; a '\r' before it stays, and the callers' checks ignore it).
func cutLine(raw []byte) (line, rest []byte) {
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		return raw[:i], raw[i+1:]
	}
	return raw, nil
}
