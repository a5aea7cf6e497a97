package edge

import (
	"bytes"
	"net/netip"
	"unsafe"

	"github.com/sluicegw/sluice/lb"
	"github.com/valyala/fasthttp"
)

// clientIP appends the client's address to dst. It is the peer, unless
// the peer is a trusted proxy: then X-Forwarded-For is read from the right
// and the first address that is not a trusted proxy is the client (the
// leftmost entries are whatever the client claimed, and can't be
// believed).
func (s *Snapshot) clientIP(ctx *fasthttp.RequestCtx, dst []byte) []byte {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	peer = peer.Unmap()
	if !s.isTrusted(peer) {
		return peer.AppendTo(dst)
	}
	// Our own X-Forwarded-For was already extended with the peer; the
	// client is the rightmost untrusted entry.
	xff := ctx.Request.Header.PeekBytes(headerXFF)
	for len(xff) > 0 {
		var entry []byte
		if i := bytes.LastIndexByte(xff, ','); i >= 0 {
			entry, xff = xff[i+1:], xff[:i]
		} else {
			entry, xff = xff, nil
		}
		entry = bytes.TrimSpace(entry)
		if len(entry) == 0 {
			continue
		}
		// ParseAddr does not keep its argument: viewing the bytes as a
		// string without copying is safe here.
		a, err := netip.ParseAddr(unsafe.String(&entry[0], len(entry)))
		if err != nil {
			return append(dst, entry...) // not an address: hash what is there
		}
		if !s.isTrusted(a.Unmap()) {
			return a.Unmap().AppendTo(dst)
		}
	}
	return peer.AppendTo(dst)
}

// hashKey computes the balancing key for ip_hash and consistent_hash.
func (s *Snapshot) hashKey(ctx *fasthttp.RequestCtx, up *Upstream) uint64 {
	switch up.hashKind {
	case "path":
		path, _ := splitURI(ctx.Request.Header.RequestURI())
		return lb.HashBytes(path)
	case "header":
		return lb.HashBytes(ctx.Request.Header.PeekBytes(up.hashName))
	case "cookie":
		return lb.HashBytes(ctx.Request.Header.CookieBytes(up.hashName))
	}
	var buf [48]byte
	return lb.HashBytes(s.clientIP(ctx, buf[:0]))
}
