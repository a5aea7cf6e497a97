package edge

import (
	"bytes"

	"github.com/sluicegw/sluice/edge/pathnorm"
	"github.com/valyala/fasthttp"
)

// The request target: split once into path and query, the absolute form's
// authority, and the path normalised for routing and forwarding.

// checkPath splits the request target once into path and query, and
// normalises the path (pathnorm: RFC 3986 section 6) into the exchange's
// own buffer: that path is what the routes match and what is forwarded,
// so sluice and the upstream can't disagree about which path was asked
// for. A path that can't be normalised safely gets 400 naming why.
func (x *exchange) checkPath() bool {
	h := &x.ctx.Request.Header
	uri := h.RequestURI()
	// RFC 9112 3.2: the request-target never carries a fragment (RFC 3986
	// 3.5); fasthttp would drop it when writing the request, after sluice
	// had routed on the path with it ("/secret#x" missed "/secret").
	if bytes.IndexByte(uri, '#') >= 0 {
		x.fail(faultFragment)
		return false
	}
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

// applySlashAction applies the matched route's escaped_slashes to a path
// that had encoded slashes or backslashes: reject answers 400 (checkPath
// already did, unless routes differ in the setting and it normalised in
// keep mode); keep forwards the path still encoded, decode forwards it
// with "/" for them. Either way the decoded path must still match the same
// route: an upstream that decodes %2F itself (Go's net/http does) must not
// land inside another route's prefix ("/admin%2Fsecret" through a keep
// catch-all would reach a protected "/admin/").
func (x *exchange) applySlashAction() bool {
	info := x.pathInfo
	if !info.Escaped() {
		return true
	}
	switch x.route.slashes {
	case pathnorm.Reject:
		if err := info.RejectErr(); err != nil {
			x.fail(pathFault(err))
			return false
		}
	case pathnorm.Keep:
		if info.EncodedSlash || info.EncodedBackslash {
			_, ok := x.decodedSameRoute()
			return ok
		}
	case pathnorm.Decode:
		if x.snap.slashOverrides { // else checkPath decoded it and routed on that
			path, ok := x.decodedSameRoute()
			if ok {
				x.path = path
			}
			return ok
		}
	}
	return true
}

// decodedSameRoute normalises the path with encoded slashes decoded and
// answers 400 unless it matches the route the request already has.
func (x *exchange) decodedSameRoute() ([]byte, bool) {
	opts := x.snap.pathOpts
	opts.EscapedSlashes = pathnorm.Decode
	path, _, err := pathnorm.Normalize(x.decodedBuf[:0], x.rawPath, opts)
	if err != nil {
		x.fail(pathFault(err))
		return nil, false
	}
	x.decodedBuf = path[:0]
	h := &x.ctx.Request.Header
	var hostBuf [256]byte
	if rt, _ := x.snap.router.match(normalizeHost(hostBuf[:0], h.Host()), path, x.matchMethod, x); rt != x.route {
		x.fail(pathFault(pathnorm.ErrEncodedSlash))
		return nil, false
	}
	return path, true
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
		j := bytes.IndexAny(rest, "/?")
		if j < 0 {
			return []byte("/"), nil
		}
		if rest[j] == '?' { // "http://h?q": an empty path, and a query
			return []byte("/"), rest[j+1:]
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
