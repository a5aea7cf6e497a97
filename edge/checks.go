package edge

import (
	"bytes"
	"iter"
)

// The checks every request passes before it is routed. Each answers the
// request itself and returns false when it refuses it. fasthttp has already
// refused what it can't parse (serverErrorHandler answers those).

// checkFraming refuses a request whose body length is ambiguous. RFC 9112
// 6.3: a message with both Transfer-Encoding and Content-Length is a
// smuggling attempt or a broken client; refuse it rather than guess which
// framing the upstream will believe. The rest of the client connection
// can't be trusted either: the answer is followed by a lingering close.
func (x *exchange) checkFraming() bool {
	h := &x.ctx.Request.Header
	if h.ContentLength() == -1 && hasHeaderLine(h.RawHeaders(), "content-length") {
		x.fail(faultAmbiguousLength)
		lingerClose(x.ctx)
		return false
	}
	return true
}

// checkPath splits the request target once into path and query (the
// exchange keeps a copy of the path: the proxy rewrites the URI) and
// refuses a target that is not a path, or a path with dot segments.
func (x *exchange) checkPath() bool {
	path, query := splitURI(x.ctx.Request.Header.RequestURI())
	if len(path) == 0 || path[0] != '/' {
		x.fail(faultBadPath)
		return false
	}
	x.path = append(x.pathBuf[:0], path...)
	x.pathBuf = x.path
	x.query = query
	if hasDotSegment(path) {
		x.fail(faultDotSegments)
		return false
	}
	return true
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

// hasDotSegment reports a "." or ".." path segment, literal or
// percent-encoded (%2e). They are refused rather than resolved: resolving
// would change the path the upstream sees, and passing them on lets a path
// that matched one route reach another route's resources upstream.
func hasDotSegment(path []byte) bool {
	for len(path) > 0 {
		path = path[1:] // skip '/'
		end := bytes.IndexByte(path, '/')
		if end < 0 {
			end = len(path)
		}
		seg := path[:end]
		path = path[end:]
		dots := 0
		for i := 0; i < len(seg); {
			switch {
			case seg[i] == '.':
				dots++
				i++
			case i+2 < len(seg) && seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
				dots++
				i += 3
			default:
				dots = 99
				i = len(seg)
			}
		}
		if dots == 1 || dots == 2 {
			return true
		}
	}
	return false
}

// hasHeaderLine reports whether raw request headers contain a header named
// name, case-insensitively.
func hasHeaderLine(raw []byte, name string) bool {
	for n := range headerNames(raw) {
		if bytes.EqualFold(n, []byte(name)) {
			return true
		}
	}
	return false
}

// headerNames yields the name of each line of a raw header block (the
// bytes before the colon, trailing blanks trimmed).
func headerNames(raw []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(raw) > 0 {
			line := raw
			if i := bytes.IndexByte(raw, '\n'); i >= 0 {
				line, raw = raw[:i], raw[i+1:]
			} else {
				raw = nil
			}
			if i := bytes.IndexByte(line, ':'); i > 0 && !yield(bytes.TrimRight(line[:i], " \t")) {
				return
			}
		}
	}
}
