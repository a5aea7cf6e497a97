package edge

import (
	"regexp"
	"strings"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/submatch"
	"github.com/valyala/fasthttp"
)

// Matching beyond host, path and method (config.Match): a path regex whose
// named groups fill rewrite.replace_path, and header, query and cookie
// conditions. All compiled with the snapshot; a condition's choices (where
// to look, how to compare) are made then.

// condWhere is where a condition looks.
type condWhere uint8

const (
	condHeader condWhere = iota
	condQuery
	condCookie
)

// condMode is how a condition compares.
type condMode uint8

const (
	condExact   condMode = iota // the value is exactly this
	condPresent                 // "*": present, any value
	condRegex                   // "~re": the value matches re
)

type routeCond struct {
	where condWhere
	mode  condMode
	name  []byte // a header's in lower case
	value []byte
	re    *regexp.Regexp
}

// maxQueryArg bounds a query parameter's value compared (its encoded
// length): a longer one doesn't match a condition.
const maxQueryArg = 512

// unquotedEqual reports whether raw, percent-decoded (and '+' as a space,
// as fasthttp decodes query arguments), is want.
func unquotedEqual(raw, want []byte) bool {
	j := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 >= len(raw):
			// A '%' too near the end: the rest is taken as it is ('+'
			// included), as fasthttp's decoder does.
			rest := raw[i:]
			return len(want)-j == len(rest) && string(want[j:]) == string(rest)
		case c == '%' && unhex(raw[i+1]) >= 0 && unhex(raw[i+2]) >= 0:
			c = byte(unhex(raw[i+1])<<4 | unhex(raw[i+2]))
			i += 2
		}
		if j >= len(want) || want[j] != c {
			return false
		}
		j++
	}
	return j == len(want)
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// compileConds compiles a validated match's conditions.
func compileConds(m config.Match) []routeCond {
	var out []routeCond
	add := func(where condWhere, set map[string]string) {
		for name, v := range set {
			c := routeCond{where: where, name: []byte(name)}
			if where == condHeader {
				c.name = []byte(strings.ToLower(name))
			}
			switch {
			case v == "*":
				c.mode = condPresent
			case strings.HasPrefix(v, "~"):
				c.mode, c.re = condRegex, regexp.MustCompile(v[1:]) // validated
			default:
				c.value = []byte(v)
			}
			out = append(out, c)
		}
	}
	add(condHeader, m.Headers)
	add(condQuery, m.Query)
	add(condCookie, m.Cookies)
	return out
}

// condsMatch reports whether every condition of rt holds for x's request.
// Without an exchange (router benchmarks), a route with conditions never
// matches.
func (rt *route) condsMatch(x *exchange) bool {
	if len(rt.conds) == 0 {
		return true
	}
	if x == nil {
		return false
	}
	for i := range rt.conds {
		if !rt.conds[i].match(x) {
			return false
		}
	}
	return true
}

func (c *routeCond) match(x *exchange) bool {
	switch c.where {
	case condHeader:
		// Compare ignoring case, first line of the name: fasthttp
		// normalizes parsed names, but one set with SetCanonical keeps
		// the case it was given.
		for k, v := range x.ctx.Request.Header.All() {
			if len(k) == len(c.name) && equalFoldASCII(k, string(c.name)) {
				return c.compare(v)
			}
		}
		return false
	case condCookie:
		h := &x.ctx.Request.Header
		for k, v := range h.Cookies() {
			if string(k) == string(c.name) {
				return c.compare(v)
			}
		}
		return false
	default:
		q := x.query
		for len(q) > 0 {
			var arg []byte
			arg, q = cutByte(q, '&')
			k, v := cutByte(arg, '=')
			if len(v) <= len(x.argBuf) && unquotedEqual(k, c.name) {
				// Decoded into the exchange's buffer: a stack array
				// handed to fasthttp would escape to the heap.
				return c.compare(fasthttp.AppendUnquotedArg(x.argBuf[:0], v))
			}
		}
		return false
	}
}

func (c *routeCond) compare(v []byte) bool {
	switch c.mode {
	case condPresent:
		return true
	case condRegex:
		return c.re.Match(v)
	default:
		return string(v) == string(c.value)
	}
}

// pathPart is a piece of a replace_path template: literal text, or the
// regex group whose text goes there.
type pathPart struct {
	text  []byte
	group int // >0: this group of the route's regex instead of text
}

func compilePathTemplate(tmpl string, re *regexp.Regexp) []pathPart {
	var parts []pathPart
	for _, p := range config.PathTemplate(tmpl) {
		if len(p) > 2 && p[0] == '{' && p[len(p)-1] == '}' {
			parts = append(parts, pathPart{group: re.SubexpIndex(p[1 : len(p)-1])})
		} else {
			parts = append(parts, pathPart{text: []byte(p)})
		}
	}
	return parts
}

// appendTemplatePath appends rt's replace_path with path's groups filled
// in. The groups are found by submatch into the exchange's scratch, not by
// regexp's FindSubmatchIndex, which allocates its result every call (no
// regexp method takes the caller's []int: see edge/submatch/doc.go). A
// path too long for submatch's bounded bitmap (thousands of bytes) falls
// back to regexp and its one allocation.
func appendTemplatePath(b []byte, rt *route, path []byte, sc *submatch.Scratch) []byte {
	idx, ok := rt.captures.Find(sc, path)
	if !ok {
		idx = rt.regex.FindSubmatchIndex(path)
	}
	for _, p := range rt.pathTemplate {
		if p.group == 0 {
			b = append(b, p.text...)
		} else if idx != nil && idx[2*p.group] >= 0 {
			b = append(b, path[idx[2*p.group]:idx[2*p.group+1]]...)
		}
	}
	return b
}
