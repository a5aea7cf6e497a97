package edge

import (
	"bytes"
	"net/netip"

	"github.com/sluicegw/sluice/edge/config"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// hopByHopHeaders apply to one connection only and are never forwarded
// (RFC 9110 7.6.1; RFC 9112 for Transfer-Encoding and TE). Connection
// itself, and Transfer-Encoding/Content-Length framing, are handled by
// fasthttp: it parses them into fields and writes fresh framing for the
// next hop.
var hopByHopHeaders = [][]byte{
	[]byte("Connection"),
	[]byte("Keep-Alive"),
	[]byte("Proxy-Connection"),
	[]byte("Proxy-Authenticate"),
	[]byte("Proxy-Authorization"),
	[]byte("TE"),
	[]byte("Trailer"),
	[]byte("Upgrade"),
}

// header is what RequestHeader and ResponseHeader share that the
// hop-by-hop rules need.
type header interface {
	PeekAll(key string) [][]byte
	DelBytes(key []byte)
}

var (
	_ header = (*fasthttp.RequestHeader)(nil)
	_ header = (*fasthttp.ResponseHeader)(nil)
)

// stripHopByHop removes the hop-by-hop headers and every header named in
// Connection, on any of its lines (RFC 9110 7.6.1: "Connection: X-Debug"
// makes X-Debug hop-by-hop too), except the protected ones and keep (the
// identity headers sluice set: a client can't get them removed either).
// Most messages carry none, so the deletes (each one a key normalisation
// and a scan of every header) run only when a look at the header names
// finds one: present says whether the caller's look found one, Connection
// included (fasthttp keeps a Connection line that names more than "close"
// among the headers; a bare "close" names no other header).
func stripHopByHop(h header, present bool, keep [][]byte) {
	if !present {
		return
	}
	if lines := h.PeekAll("Connection"); len(lines) > 0 {
		// The lines alias the header being edited: copy them before deleting.
		var buf [256]byte
		tokens := buf[:0]
		for _, l := range lines {
			tokens = append(append(tokens, l...), ',')
		}
		for len(tokens) > 0 {
			var tok []byte
			if i := bytes.IndexByte(tokens, ','); i >= 0 {
				tok, tokens = tokens[:i], tokens[i+1:]
			} else {
				tok, tokens = tokens, nil
			}
			tok = bytes.TrimSpace(tok)
			if len(tok) > 0 && !isProtected(tok) && !isNamed(keep, tok) {
				h.DelBytes(tok)
			}
		}
	}
	for _, k := range hopByHopHeaders {
		h.DelBytes(k)
	}
}

func isNamed(names [][]byte, name []byte) bool {
	for _, n := range names {
		if bytes.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// stripResponseHopByHop looks through the parsed response header names.
func stripResponseHopByHop(h *fasthttp.ResponseHeader) {
	present := false
	for k := range h.All() {
		if isHopByHopName(k) {
			present = true
			break
		}
	}
	stripHopByHop(h, present, nil)
}

// hopByHopByLen holds hopByHopHeaders by the length of their names, so a
// name is compared with the one or two of its length only: it runs on
// every header of every request and answer.
var hopByHopByLen = func() (t [20][][]byte) {
	for _, k := range hopByHopHeaders {
		t[len(k)] = append(t[len(k)], k)
	}
	return t
}()

func isHopByHopName(name []byte) bool {
	if len(name) >= len(hopByHopByLen) {
		return false
	}
	for _, k := range hopByHopByLen[len(name)] {
		if bytes.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// protectedHeaders can't be made hop-by-hop by naming them in Connection:
// removing them would change the message's framing or routing, or drop the
// request id the gateway already assigned ("hop-by-hop header abuse").
var protectedHeaders = []string{"host", "content-length", "transfer-encoding", "content-type", "x-request-id"}

func isProtected(name []byte) bool {
	for _, p := range protectedHeaders {
		if len(name) == len(p) && bytes.EqualFold(name, []byte(p)) {
			return true
		}
	}
	return false
}

const headerXFFName = "X-Forwarded-For" // for PeekAll, which takes a string

var (
	headerXFF  = []byte(headerXFFName)
	headerXFP  = []byte("X-Forwarded-Proto")
	headerXFH  = []byte("X-Forwarded-Host")
	headerVia  = []byte("Via")
	headerFwd  = []byte("Forwarded")
	headerXRIP = []byte("X-Real-IP")
	// Headers that name the client or the URL a front proxy saw, which
	// upstreams believe (IIS and Symfony route by X-Original-URL and
	// X-Rewrite-URL; frameworks build URLs from X-Forwarded-Port and
	// -Prefix; CDNs set True-Client-IP): from anyone but a trusted proxy
	// they are removed.
	headerXOriginalURL = []byte("X-Original-URL")
	headerXRewriteURL  = []byte("X-Rewrite-URL")
	headerXFPort       = []byte("X-Forwarded-Port")
	headerXFPrefix     = []byte("X-Forwarded-Prefix")
	headerTrueClientIP = []byte("True-Client-IP")
	headerXClientIP    = []byte("X-Client-IP")
	spoofable          = [][]byte{headerFwd, headerXRIP, headerXFF, headerXFP, headerXFH,
		headerXOriginalURL, headerXRewriteURL, headerXFPort, headerXFPrefix, headerTrueClientIP, headerXClientIP}
	viaSelf    = []byte("1.1 sluice")
	protoHTTP  = []byte("http")
	protoHTTPS = []byte("https")
	commaSpace = []byte(", ")
)

// setForwarded sets X-Forwarded-For/-Proto/-Host and Via on the request.
// A client's own X-Forwarded-*, Forwarded and X-Real-IP are kept (and For
// extended) only when the peer is a trusted proxy; otherwise they are
// replaced or removed, so a client can't claim to be someone else.
func (s *Snapshot) setForwarded(x *exchange) {
	ctx := x.ctx
	h := &ctx.Request.Header
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	peer = peer.Unmap()
	trusted := s.isTrusted(peer)

	if !trusted && x.claimsAddr {
		// The other ways a client names its address (RFC 7239 and the de
		// facto X-Real-IP), and extra lines of the X-Forwarded-* names
		// (setting one replaces only its first line): from anyone but a
		// trusted proxy, they are lies.
		for _, k := range spoofable {
			h.DelBytes(k)
		}
	}
	var ipBuf [48]byte
	ip := peer.AppendTo(ipBuf[:0])
	if !trusted {
		h.SetCanonical(headerXFF, ip)
	} else {
		// Several lines from a trusted proxy are one list (RFC 9110 5.3):
		// the upstream gets it as one line, this hop appended.
		switch lines := h.PeekAll(headerXFFName); len(lines) {
		case 0:
			h.SetCanonical(headerXFF, ip)
		case 1:
			setJoined(h, headerXFF, lines[0], ip)
		default:
			buf := bytebufferpool.Get()
			for _, line := range lines {
				buf.B = append(append(buf.B, line...), commaSpace...)
			}
			buf.B = append(buf.B, ip...)
			h.DelBytes(headerXFF)
			h.SetCanonical(headerXFF, buf.B)
			bytebufferpool.Put(buf)
		}
	}
	if !trusted || len(h.PeekBytes(headerXFP)) == 0 {
		if ctx.IsTLS() {
			h.SetCanonical(headerXFP, protoHTTPS)
		} else {
			h.SetCanonical(headerXFP, protoHTTP)
		}
	}
	if !trusted || len(h.PeekBytes(headerXFH)) == 0 {
		h.SetCanonical(headerXFH, h.Host())
	}

	if x.mayHave(x.head.via) {
		appendVia(h)
	} else {
		h.SetCanonical(headerVia, viaSelf)
	}
}

// appendVia adds this hop to Via (RFC 9110 7.6.3), keeping earlier hops.
func appendVia(h interface {
	PeekCanonical([]byte) []byte
	SetCanonical(k, v []byte)
}) {
	if prev := h.PeekCanonical(headerVia); len(prev) > 0 {
		setJoined(h, headerVia, prev, viaSelf)
		return
	}
	h.SetCanonical(headerVia, viaSelf)
}

// setJoined sets key to "prev, next". prev may alias the header, so the
// value is built in a pooled buffer first.
func setJoined(h interface{ SetCanonical(k, v []byte) }, key, prev, next []byte) {
	buf := bytebufferpool.Get()
	buf.B = append(append(append(buf.B[:0], prev...), commaSpace...), next...)
	h.SetCanonical(key, buf.B)
	bytebufferpool.Put(buf)
}

func (s *Snapshot) isTrusted(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// consoleCookieName is the admin console's session cookie, which
// scanHead looks for in Cookie lines.
var consoleCookieName = []byte(config.ConsoleSessionCookie)

// dropConsoleCookie removes the admin console's session cookie from the
// request. Browsers send a host's cookies to every port of it (RFC 6265
// section 8.5, SameSite ignores ports too), so a console user's
// sluice_session reaches the data plane on the same host, and would reach
// upstreams and their logs. Called only when a Cookie line holds the
// name (headScan.consoleCookie): fasthttp then parses the cookies, and
// writes the rest back as "a=1; b=2" (cookies it can't parse, and the
// order of the last one, may change: only on these requests).
func (x *exchange) dropConsoleCookie() {
	x.ctx.Request.Header.DelCookieBytes(consoleCookieName)
}
