package edge

import (
	"bytes"
	"strconv"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// compileRedirect is server.redirect_https for the request path: the
// port suffix of the https URL ("" for 443), nil when off.
func compileRedirect(r *config.RedirectHTTPS) []byte {
	if r == nil {
		return nil
	}
	if r.Port == 0 || r.Port == 443 {
		return []byte{}
	}
	return []byte(":" + strconv.Itoa(r.Port))
}

// redirectToHTTPS answers a plain request with a 308 (RFC 9110 15.4.9:
// method and body are kept, unlike 301) to the same host, path and query
// over https. The host's own port, if any, is replaced by the configured
// one. The path is the one as received; checkPath has refused fragments
// and malformed targets already.
func (x *exchange) redirectToHTTPS() {
	ctx := x.ctx
	host := hostWithoutPort(ctx.Request.Header.Host())
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	b := append(buf.B[:0], "https://"...)
	b = append(b, host...)
	b = append(b, x.snap.redirectHTTPS...)
	b = append(b, x.rawPath...)
	if len(x.query) > 0 {
		b = append(b, '?')
		b = append(b, x.query...)
	}
	ctx.Response.Header.SetBytesV("Location", b)
	ctx.Response.Header.SetCanonical(headerRequestID, x.id)
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	buf.B = b
}

// hostWithoutPort: "a.example:80" gives "a.example", "[::1]:80" gives
// "[::1]" (brackets kept, as a URL needs them).
func hostWithoutPort(h []byte) []byte {
	i := bytes.LastIndexByte(h, ':')
	if i < 0 || bytes.LastIndexByte(h, ']') > i {
		return h
	}
	return h[:i]
}
