package edge

import (
	"bytes"
	"net/netip"
	"unsafe"

	"github.com/sluicegw/sluice/lb"
)

// clientIP is the client's address, formatted once per request. It is the
// peer, unless the peer is a trusted proxy: then X-Forwarded-For is read
// from the right and the first address that is not a trusted proxy is the
// client (the leftmost entries are whatever the client claimed, and can't
// be believed). The proxy step extends X-Forwarded-For with the peer, a
// trusted proxy, which this skips: asked before or after, it is the same.
func (x *exchange) clientIP() []byte {
	if !x.ipDone {
		x.ip, x.ipDone = x.snap.appendClientIP(x.ipBuf[:0], x), true
	}
	return x.ip
}

// clientAddr is clientIP parsed: invalid when a trusted proxy's
// X-Forwarded-For entry was not an address.
func (x *exchange) clientAddr() netip.Addr {
	ip := x.clientIP()
	if len(ip) == 0 {
		return netip.Addr{}
	}
	// ParseAddr does not keep its argument (see appendClientIP); the
	// address is unmapped already.
	a, _ := netip.ParseAddr(unsafe.String(&ip[0], len(ip)))
	return a
}

func (s *Snapshot) appendClientIP(dst []byte, x *exchange) []byte {
	peer, _ := netip.AddrFromSlice(x.ctx.RemoteIP())
	peer = peer.Unmap()
	if !s.isTrusted(peer) {
		return peer.AppendTo(dst)
	}
	// RFC 9110 5.3: several lines are one list, in order. Some proxies
	// (HAProxy's option forwardfor) add a line of their own instead of
	// extending the last one, so the client's own line comes first and the
	// real address is in a later one. (This runs before checkHead too, for
	// the top-level ip_filter: it reads the lines itself.)
	lines := x.ctx.Request.Header.PeekAll(headerXFFName)
	for i := len(lines) - 1; i >= 0; i-- {
		if out, ok := s.clientFromXFF(dst, lines[i]); ok {
			return out
		}
	}
	return peer.AppendTo(dst)
}

// clientFromXFF reads one X-Forwarded-For line from the right and appends
// the first entry that is not a trusted proxy; false when every entry is.
func (s *Snapshot) clientFromXFF(dst, xff []byte) ([]byte, bool) {
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
			return append(dst, entry...), true // not an address: use what is there
		}
		if !s.isTrusted(a.Unmap()) {
			return a.Unmap().AppendTo(dst), true
		}
	}
	return dst, false
}

// hasher is what consistent_hash and ip_hash balance on, chosen when the
// snapshot is built (compileHasher).
type hasher interface {
	hash(x *exchange) uint64
}

type (
	hashIP     struct{}
	hashPath   struct{}
	hashHeader struct{ name []byte }
	hashCookie struct{ name []byte }
)

var (
	_ hasher = hashIP{}
	_ hasher = hashPath{}
	_ hasher = hashHeader{}
	_ hasher = hashCookie{}
)

func (hashIP) hash(x *exchange) uint64   { return lb.HashBytes(x.clientIP()) }
func (hashPath) hash(x *exchange) uint64 { return lb.HashBytes(x.path) }
func (h hashHeader) hash(x *exchange) uint64 {
	return lb.HashBytes(x.ctx.Request.Header.PeekBytes(h.name))
}
func (h hashCookie) hash(x *exchange) uint64 {
	return lb.HashBytes(x.ctx.Request.Header.CookieBytes(h.name))
}

// compileHasher: kind is "ip", "path", "header" or "cookie" (validated).
func compileHasher(kind, name string) hasher {
	switch kind {
	case "path":
		return hashPath{}
	case "header":
		return hashHeader{[]byte(name)}
	case "cookie":
		return hashCookie{[]byte(name)}
	}
	return hashIP{}
}
