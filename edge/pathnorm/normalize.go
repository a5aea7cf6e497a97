package pathnorm

import (
	"bytes"
	"unicode/utf8"
)

// Byte classes of a path (RFC 3986 2.2, 2.3, 3.3).
const (
	clsEncode     = iota // not allowed raw in a path: percent-encode it
	clsRaw               // unreserved, sub-delims, ":" or "@": stays raw
	clsUnreserved        // ALPHA / DIGIT / "-" / "." / "_" / "~": also decoded from %XX
	clsSlash             // "/"
	clsPercent           // "%"
	clsControl           // 0x00-0x1F, 0x7F
	clsBackslash         // "\"
	clsHigh              // 0x80-0xFF: part of a UTF-8 sequence
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c < 0x20 || c == 0x7f:
			t[c] = clsControl
		case c >= 0x80:
			t[c] = clsHigh
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			t[c] = clsUnreserved
		}
	}
	for _, c := range []byte("!$&'()*+,;=:@") { // sub-delims, ":" and "@": pchar, RFC 3986 3.3
		t[c] = clsRaw
	}
	t['/'] = clsSlash
	t['%'] = clsPercent
	t['\\'] = clsBackslash
	return t
}()

// plain marks the bytes that stay raw and mean nothing to dot segments:
// unreserved, sub-delims, ":" and "@", but not "." or ";". Runs of them are
// copied whole.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = (class[c] == clsRaw || class[c] == clsUnreserved) && c != '.' && c != ';'
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// Normalize normalises path, an origin-form path without its query (RFC
// 9112 3.2.1), as the package documentation describes, and returns it.
//
// Ownership: when path is already normal (the common case: no "%", no dot
// segment, no "//", nothing to encode), out is path itself, not a copy, and
// Info.Changed is false; it is valid as long as path is (for a fasthttp
// request, until the handler returns) and must not be modified. Otherwise
// the result is appended to dst and out is only the appended part, never
// dst's earlier contents; pass a reused buffer's [:0]. Normalize allocates
// only when dst is too small: the result is at most 3*len(path) bytes (1
// for an empty path). dst must not overlap path.
//
// An empty path is "/" (RFC 3986 6.2.3, RFC 9112 3.2.1). On error, out is
// nil and err is an Error; Info then describes the path up to the error.
func Normalize(dst, path []byte, o Options) (out []byte, info Info, err error) {
	if len(path) == 0 {
		out = append(dst, '/')
		return out[len(dst):], Info{Changed: true}, nil
	}
	if path[0] != '/' {
		return nil, info, ErrNotOriginForm
	}
	if isNormal(path, o.KeepEmptySegments) {
		return path, info, nil
	}
	n := normalizer{out: dst, base: len(dst), opt: o}
	if err := n.run(path); err != nil {
		return nil, n.info, err
	}
	out = n.out[n.base:]
	n.info.Changed = !bytes.Equal(out, path)
	return out, n.info, nil
}

// isNormal reports whether path (starting with "/") is already what
// Normalize would make of it: only bytes that stay raw, no "%", no dot
// segment (with or without parameters), and no "//" unless kept. It is the
// fast path: one table lookup per byte.
func isNormal(path []byte, keepEmpty bool) bool {
	for i := 1; i < len(path); i++ {
		c := path[i]
		if plain[c] {
			continue
		}
		switch c {
		case '/':
			if path[i-1] == '/' && !keepEmpty {
				return false
			}
		case '.':
			if path[i-1] == '/' && isDotStart(path[i:]) {
				return false
			}
		case ';':
		default:
			return false
		}
	}
	return true
}

// isDotStart reports whether seg (the rest of a path from a segment's
// first byte) begins with a "." or ".." segment, parameters or not.
func isDotStart(seg []byte) bool {
	n := 1
	if len(seg) > 1 && seg[1] == '.' {
		n = 2
	}
	return len(seg) == n || seg[n] == '/' || seg[n] == ';'
}

// normalizer is the slow path's state. The output always holds the root
// "/" at out[base], and while a segment is being read it ends with the
// segment's bytes so far, which start at seg.
type normalizer struct {
	out  []byte
	base int
	seg  int
	opt  Options
	info Info

	// The current unit: the segment, or in keep mode the part of it
	// between encoded slashes. Its dot state decides whether it is a dot
	// segment.
	left   bool // the unit starts right after an encoded slash
	dots   int  // "." before anything else (and before any ";")
	other  bool // something other than "." before any ";"
	encDot bool // one of the dots was %2E
	param  bool // ";" (or %3B) seen: the rest are parameters
}

func (n *normalizer) run(path []byte) error {
	n.out = append(n.out, '/')
	n.seg = len(n.out)
	for i := 1; i < len(path); {
		if plain[path[i]] {
			j := i + 1
			for j < len(path) && plain[path[j]] {
				j++
			}
			n.other = n.other || !n.param
			at := len(n.out)
			n.out = append(n.out, path[i:j]...)
			// its first two bytes may finish a %252E begun before it
			for k := at; k < len(n.out) && k <= at+1; k++ {
				if err := n.checkDouble(k); err != nil {
					return err
				}
			}
			i = j
			continue
		}
		c := path[i]
		cls := class[c]
		enc := false
		if cls == clsPercent {
			if i+2 >= len(path) {
				return ErrBadPercent
			}
			hi, lo := unhex(path[i+1]), unhex(path[i+2])
			if hi > 15 || lo > 15 {
				return ErrBadPercent
			}
			c = hi<<4 | lo
			cls = class[c]
			enc = true
			i += 3
		} else {
			i++
		}
		switch cls {
		case clsSlash:
			if !enc {
				if err := n.endSegment(false, true); err != nil {
					return err
				}
				continue
			}
			n.info.EncodedSlash = true
			if err := n.escapedSlash(ErrEncodedSlash, "%2F"); err != nil {
				return err
			}
		case clsBackslash:
			if !enc {
				return ErrBackslash
			}
			n.info.EncodedBackslash = true
			if err := n.escapedSlash(ErrEncodedBackslash, "%5C"); err != nil {
				return err
			}
		case clsControl:
			return ErrControl
		case clsHigh:
			var err error
			if i, err = n.utf8Seq(path, i, c); err != nil {
				return err
			}
		case clsUnreserved:
			n.note(c, enc)
			n.out = append(n.out, c)
			if unhex(c) <= 15 {
				if err := n.checkDouble(len(n.out) - 1); err != nil {
					return err
				}
			}
		case clsRaw:
			n.note(c, false)
			if enc {
				n.escape(c)
			} else {
				n.out = append(n.out, c)
			}
		default: // clsEncode, clsPercent (%25)
			n.note(c, false)
			n.escape(c)
		}
	}
	return n.endSegment(false, false)
}

// note updates the unit's dot state with its next character.
func (n *normalizer) note(c byte, enc bool) {
	switch {
	case n.param || n.other:
	case c == '.':
		n.dots++
		n.encDot = n.encDot || enc
	case c == ';':
		n.param = true
	default:
		n.other = true
	}
}

func (n *normalizer) escape(c byte) {
	n.out = append(n.out, '%', upperHex[c>>4], upperHex[c&15])
}

// checkDouble is called for each raw hex digit written, at index last of
// the output: if the output there ends in %25 and the hex of ".", "/" or
// "\", the path is double encoded. Checking the output catches every
// spelling (%252e, %25%32%65).
func (n *normalizer) checkDouble(last int) error {
	o := n.out[n.seg : last+1]
	if len(o) < 5 || o[len(o)-5] != '%' || o[len(o)-4] != '2' || o[len(o)-3] != '5' {
		return nil
	}
	switch a, b := o[len(o)-2], o[len(o)-1]|0x20; {
	case a == '2' && (b == 'e' || b == 'f'), a == '5' && b == 'c':
		n.info.DoubleEncoded = true
		if n.opt.EscapedSlashes == Reject {
			return ErrDoubleEncoded
		}
	}
	return nil
}

// unitErr classifies the unit that just ended: nil if it is not a dot
// segment, an error if it is one that must not be resolved. rightEscaped:
// the unit ends at an encoded slash.
func (n *normalizer) unitErr(rightEscaped bool) (dot bool, err error) {
	if n.other || n.dots == 0 || n.dots > 2 {
		return false, nil
	}
	switch {
	case n.param:
		return true, ErrDotSegmentParam
	case n.encDot:
		return true, ErrEncodedDotSegment
	case n.left || rightEscaped:
		return true, ErrDotSegmentEscapedSlash
	}
	return true, nil
}

func (n *normalizer) resetUnit(left bool) {
	n.left, n.dots, n.other, n.encDot, n.param = left, 0, false, false, false
}

// escapedSlash handles a %2F or %5C (canonical: its upper-case spelling)
// as the Action says.
func (n *normalizer) escapedSlash(rejectErr Error, canonical string) error {
	switch n.opt.EscapedSlashes {
	case Keep:
		if _, err := n.unitErr(true); err != nil {
			return err
		}
		n.out = append(n.out, canonical...)
		n.resetUnit(true)
		return nil
	case Decode:
		return n.endSegment(true, true)
	}
	return rejectErr
}

// endSegment ends the current segment at a "/" (more: more follows; escaped:
// the "/" was decoded from %2F or %5C) or at the end of the path.
func (n *normalizer) endSegment(escaped, more bool) error {
	dot, err := n.unitErr(escaped)
	if err != nil {
		return err
	}
	switch {
	case dot:
		n.out = n.out[:n.seg] // drop the segment; out ends in "/"
		if n.dots == 2 {
			if n.seg == n.base+1 {
				return ErrAboveRoot
			}
			// and the one before it (RFC 3986 5.2.4 2C)
			j := bytes.LastIndexByte(n.out[n.base:n.seg-1], '/')
			n.out = n.out[:n.base+j+1]
		}
	case len(n.out) == n.seg && !n.opt.KeepEmptySegments:
		// an empty segment: merged away ("//" -> "/")
	case more:
		n.out = append(n.out, '/')
	}
	n.seg = len(n.out)
	n.resetUnit(escaped)
	return nil
}

// utf8Seq reads the rest of a UTF-8 sequence whose first byte is c (raw or
// decoded) from path[i:], raw or percent-encoded, checks it (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), and writes it
// percent-encoded. It returns the index after the sequence.
func (n *normalizer) utf8Seq(path []byte, i int, c byte) (int, error) {
	var b [utf8.UTFMax]byte
	b[0] = c
	size := 0
	switch {
	case c >= 0xc2 && c <= 0xdf:
		size = 2
	case c >= 0xe0 && c <= 0xef:
		size = 3
	case c >= 0xf0 && c <= 0xf4:
		size = 4
	default:
		return i, ErrInvalidUTF8
	}
	for k := 1; k < size; k++ {
		if i >= len(path) {
			return i, ErrInvalidUTF8
		}
		d := path[i]
		if d == '%' {
			if i+2 >= len(path) {
				return i, ErrBadPercent
			}
			hi, lo := unhex(path[i+1]), unhex(path[i+2])
			if hi > 15 || lo > 15 {
				return i, ErrBadPercent
			}
			d = hi<<4 | lo
			i += 3
		} else {
			i++
		}
		if d&0xc0 != 0x80 {
			return i, ErrInvalidUTF8
		}
		b[k] = d
	}
	if _, s := utf8.DecodeRune(b[:size]); s != size { // invalid: (RuneError, 1)
		return i, ErrInvalidUTF8
	}
	n.note(c, false)
	for _, d := range b[:size] {
		n.escape(d)
	}
	return i, nil
}
