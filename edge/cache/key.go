package cache

import (
	"bytes"
	"strings"

	"github.com/valyala/fasthttp"
)

// Query modes of a key: which query parameters are part of it.
const (
	QueryAll   = iota // every parameter (sorted)
	QueryNone         // none: /p?a=1 and /p are one entry
	QueryAllow        // only the listed parameters
	QueryDeny         // all but the listed (tracking parameters: utm_source...)
)

// KeyRules say what a key is made of beyond method, host and path.
// Built at snapshot build, read-only after.
type KeyRules struct {
	Query     int
	QueryList [][]byte // parameter names, decoded (as the upstream reads them)
	Headers   [][]byte // lower-case request field names whose values are part of the key
}

// MaxQueryParams bounds the parameters a key sorts; a request with more
// is not cached (sorting stays cheap and bounded).
const MaxQueryParams = 64

// The key text is readable, so purges can name keys and prefixes:
//
//	GET example.com/path?a=1&b=2
//
// followed by "\x00r:" and the route's name (added by the cache step:
// two routes answering one URL never share entries), "\x00s:" and the
// scheme, "\x00f:" name=value for each forwarded URL field a trusted
// proxy sent, when the route asks, by "\x00h:" name=value for each keyed
// header and "\x00id:" identity, and for a variant by "\x00v:"
// name=value for each field the answer varies on. Parts after the URL
// start with NUL, which no host, path or query can hold, so one key is
// never a prefix-collision of another's URL part.

// AppendKey appends the primary key of a request to dst. method is GET
// for a HEAD request (a HEAD is answered from the GET's entry). host is
// normalised here (lower case, no default port, no trailing dot); path
// is the gateway's normalised path; query is the raw query without '?'.
// ok is false when the request can't be keyed (too many parameters).
func (k *KeyRules) AppendKey(dst, method, host, path, query []byte, tls bool, h *fasthttp.RequestHeader) (_ []byte, ok bool) {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = appendHost(dst, host, tls)
	for _, c := range path {
		if c == 0 {
			c = ' ' // NUL separates key parts; no path may hold one
		}
		dst = append(dst, c)
	}
	if k.Query != QueryNone && len(query) > 0 {
		var ok bool
		if dst, ok = k.appendQuery(dst, query); !ok {
			return dst, false
		}
	}
	for _, name := range k.Headers {
		dst = append(dst, "\x00h:"...)
		dst = append(dst, name...)
		dst = append(dst, '=')
		dst = appendFieldValues(dst, h, name)
	}
	return dst, true
}

// AppendVary appends the secondary key of a variant (RFC 9111 4.1):
// each field named by vary, its values normalised (whitespace around
// commas removed, case folded where the field's values are
// case-insensitive tokens) so that equivalent requests meet one entry.
func AppendVary(dst []byte, vary []string, h *fasthttp.RequestHeader) []byte {
	for _, name := range vary {
		dst = append(dst, "\x00v:"...)
		dst = append(dst, name...)
		dst = append(dst, '=')
		dst = appendFieldValues(dst, h, s2b(name))
	}
	return dst
}

// caseless are fields whose values compare case-insensitively; other
// values are kept as sent (Cookie, Authorization: case matters there, and
// folding would hand one caller's variant to another).
func caseless(name []byte) bool {
	return eqFold(name, "accept-encoding") || eqFold(name, "accept-language") || eqFold(name, "accept") || eqFold(name, "accept-charset")
}

// appendFieldValues appends every line of field name (case-insensitive),
// combined with commas, whitespace around items removed; for a caseless
// field, lower-cased. An absent field appends nothing (distinct from an
// empty one only in that neither adds bytes: both mean "not sent").
func appendFieldValues(dst []byte, h *fasthttp.RequestHeader, name []byte) []byte {
	lower := caseless(name)
	first := true
	for k, v := range h.All() {
		if !eqFoldBytes(k, name) {
			continue
		}
		for len(v) > 0 {
			var item []byte
			item, v = nextItem(v)
			item = trimOWS(item)
			if len(item) == 0 {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			for _, c := range item {
				if lower && 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				if c == 0 {
					c = ' ' // NUL separates key parts
				}
				dst = append(dst, c)
			}
		}
	}
	return dst
}

// appendHost appends a normalised host: lower case, the scheme's default
// port and a trailing dot removed (RFC 3986 6.2.2.1, 6.2.3), so
// "Example.COM:80" and "example.com." share entries. Bytes that can't be
// in a host are replaced, so no Host value can forge a key's structure.
func appendHost(dst, host []byte, tls bool) []byte {
	if len(host) == 0 {
		return append(dst, '-')
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		port := host[i+1:]
		if (!tls && string(port) == "80") || (tls && string(port) == "443") || len(port) == 0 {
			host = host[:i]
		}
	}
	if len(host) > 1 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	for _, c := range host {
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c <= ' ', c == '/', c == '?', c == '#', c >= 0x7f:
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendQuery appends "?" and the kept parameters sorted by name (so
// ?b=2&a=1 and ?a=1&b=2 share an entry). Empty items are dropped.
func (k *KeyRules) appendQuery(dst, q []byte) ([]byte, bool) {
	var items [MaxQueryParams][]byte
	n := 0
	for len(q) > 0 {
		var item []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			item, q = q[:i], q[i+1:]
		} else {
			item, q = q, nil
		}
		if len(item) == 0 {
			continue
		}
		keep, ok := k.keepParam(item)
		if !ok {
			return dst, false
		}
		if !keep {
			continue
		}
		if n == MaxQueryParams {
			return dst, false
		}
		items[n] = item
		n++
	}
	// Insertion sort by name alone, stable: parameters of one name keep
	// their order (?id=2&id=1 is not ?id=1&id=2 to an upstream taking
	// the first). Names compare decoded (i%64 is id), as the upstream
	// will read them. n is small and bounded, and it allocates nothing.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && compareNames(paramName(items[j]), paramName(items[j-1])) < 0; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	for i := range n {
		if i == 0 {
			dst = append(dst, '?')
		} else {
			dst = append(dst, '&')
		}
		for _, c := range items[i] {
			if c == 0 {
				c = ' '
			}
			dst = append(dst, c)
		}
	}
	return dst, true
}

// keepParam reports whether item is part of the key. Names are matched
// decoded (?i%64=x is id to the upstream). ok is false when the request
// must not be keyed in allow or deny mode: a name with a malformed escape
// (upstreams differ on what it is), or a ';' (some upstreams split
// parameters on it too: "utm_source=x;id=2" would hide id=2).
func (k *KeyRules) keepParam(item []byte) (keep, ok bool) {
	if k.Query == QueryAll {
		return true, true
	}
	if bytes.IndexByte(item, ';') >= 0 {
		return false, false
	}
	name := paramName(item)
	for i := 0; i < len(name); {
		_, n, ok := nameByte(name, i)
		if !ok {
			return false, false
		}
		i += n
	}
	listed := false
	for _, l := range k.QueryList {
		if decodedEquals(name, l) {
			listed = true
			break
		}
	}
	return listed == (k.Query == QueryAllow), true
}

// eqFoldBytes compares two field names ASCII-case-insensitively; b is
// lower case.
func eqFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		c := a[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != b[i] {
			return false
		}
	}
	return true
}

// AppendLowerNoNUL appends v lower-cased, NUL (the key part separator)
// replaced by a space: for key parts whose case does not matter (a
// scheme, a host).
func AppendLowerNoNUL(dst, v []byte) []byte {
	for _, c := range v {
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == 0:
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// paramName is the name part of a query item (before '=').
func paramName(item []byte) []byte {
	if i := bytes.IndexByte(item, '='); i >= 0 {
		return item[:i]
	}
	return item
}

// nameByte decodes the byte of a query parameter name at s[i] as an
// upstream's form decoding would: %XX, and '+' for a space. n: the bytes
// read; ok is false for a malformed escape (read as a plain '%').
func nameByte(s []byte, i int) (c byte, n int, ok bool) {
	switch s[i] {
	case '+':
		return ' ', 1, true
	case '%':
		if i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				return hi<<4 | lo, 3, true
			}
		}
		return '%', 1, false
	}
	return s[i], 1, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// compareNames compares two raw parameter names by their decoded bytes.
func compareNames(a, b []byte) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, na, _ := nameByte(a, i)
		cb, nb, _ := nameByte(b, j)
		if ca != cb {
			return int(ca) - int(cb)
		}
		i, j = i+na, j+nb
	}
	switch {
	case i < len(a):
		return 1
	case j < len(b):
		return -1
	}
	return 0
}

// decodedEquals reports whether raw, decoded, is plain.
func decodedEquals(raw, plain []byte) bool {
	i, j := 0, 0
	for ; i < len(raw) && j < len(plain); j++ {
		c, n, _ := nameByte(raw, i)
		if c != plain[j] {
			return false
		}
		i += n
	}
	return i == len(raw) && j == len(plain)
}

// URLPart is a key's URL part, "METHOD host path?query": what a key
// purge names (the key up to its first NUL-led part).
func URLPart(key string) string {
	if i := strings.IndexByte(key, 0); i >= 0 {
		return key[:i]
	}
	return key
}
