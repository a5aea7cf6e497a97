package auth

import (
	"bytes"
	"errors"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// Duplicate member names in a token's JSON.
//
// RFC 7519 section 4: "The Claim Names within a JWT Claims Set MUST be
// unique; JWT parsers MUST either reject JWTs with duplicate Claim Names
// or use a JSON parser that returns only the lexically last duplicate
// member name". RFC 7515 section 4 says the same of the JOSE Header, and
// RFC 8259 section 4 warns that parsers differ on such objects.
// encoding/json keeps the last; a service behind sluice that parses the
// same token with a first-wins library would see another caller, another
// expiry or another algorithm than the gateway checked. sluice rejects.
//
// Objects are checked at every depth, not only the top-level members
// sluice reads itself: the token travels upstream unchanged, and services
// read nested claims too (Keycloak's realm_access.roles, for one).

var (
	errDuplicateMember = errors.New("auth: duplicate member name")
	errJSONSyntax      = errors.New("auth: malformed JSON")
	errJSONDepth       = errors.New("auth: JSON nested too deeply")
)

// maxJSONDepth bounds how deeply objects and arrays nest in a token's
// header or claims; deeper is refused. Real tokens nest two or three deep.
const maxJSONDepth = 32

// scanMembers checks that data is one JSON object whose objects, at every
// depth, have unique member names, compared after unescaping the way
// encoding/json does ("e\u0078p" is "exp"; a lone surrogate is U+FFFD).
// It reports whether the top-level object has a "crit" member.
//
// It is not a full validator: text it lets through still has to pass
// encoding/json (in golang-jwt). Besides duplicates, it refuses only
// invalid UTF-8 (RFC 8259 section 8.1, which encoding/json would quietly
// replace), nesting deeper than maxJSONDepth, and text encoding/json
// refuses too.
func scanMembers(data []byte) (crit bool, err error) {
	s := newMemberScan()
	return s.scan(data)
}

// newMemberScan returns a scanner with room for the names of typical
// tokens; one scanner serves both of a token's segments.
func newMemberScan() *memberScan { return &memberScan{names: make([][]byte, 0, 32)} }

func (s *memberScan) scan(data []byte) (crit bool, err error) {
	if !utf8.Valid(data) {
		return false, errJSONSyntax
	}
	s.data, s.pos, s.names, s.crit = data, 0, s.names[:0], false
	s.space()
	if s.peek() != '{' {
		return false, errJSONSyntax
	}
	if err := s.value(0); err != nil {
		return false, err
	}
	s.space()
	if s.pos != len(s.data) {
		return false, errJSONSyntax
	}
	return s.crit, nil
}

type memberScan struct {
	data  []byte
	pos   int
	names [][]byte // member names of the objects open now, innermost last
	crit  bool
}

func (s *memberScan) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *memberScan) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value; depth is how many containers enclose it.
func (s *memberScan) value(depth int) error {
	s.space()
	switch c := s.peek(); {
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return errJSONDepth
		}
		if c == '{' {
			return s.object(depth + 1)
		}
		return s.array(depth + 1)
	case c == '"':
		_, err := s.str()
		return err
	}
	// A number, true, false or null: encoding/json checks the grammar.
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.') {
			break
		}
		s.pos++
	}
	if s.pos == start {
		return errJSONSyntax
	}
	return nil
}

func (s *memberScan) object(depth int) error {
	s.pos++ // '{'
	start := len(s.names)
	s.space()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.space()
		if s.peek() != '"' {
			return errJSONSyntax
		}
		name, err := s.str()
		if err != nil {
			return err
		}
		if depth == 1 && string(name) == "crit" {
			s.crit = true
		}
		s.names = append(s.names, name)
		s.space()
		if s.peek() != ':' {
			return errJSONSyntax
		}
		s.pos++
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			err := unique(s.names[start:])
			s.names = s.names[:start]
			return err
		default:
			return errJSONSyntax
		}
	}
}

func (s *memberScan) array(depth int) error {
	s.pos++ // '['
	s.space()
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// str scans a string and returns its value: a slice of data when it has
// no escapes (the common case, no allocation), else a new unescaped copy.
func (s *memberScan) str() ([]byte, error) {
	s.pos++ // '"'
	start, escaped := s.pos, false
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			raw := s.data[start:s.pos]
			s.pos++
			if escaped {
				return unescape(raw)
			}
			return raw, nil
		case c == '\\':
			escaped = true
			s.pos += 2 // the escape's first character; \uXXXX is checked by unescape
		case c < 0x20:
			return nil, errJSONSyntax
		default:
			s.pos++
		}
	}
	return nil, errJSONSyntax
}

// unescape decodes a JSON string's escapes as encoding/json does, so two
// names are equal here exactly when they are equal as map keys there: a
// surrogate that is not half of a valid pair becomes U+FFFD.
func unescape(s []byte) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			out = append(out, s[i])
			i++
			continue
		}
		if i+1 >= len(s) {
			return nil, errJSONSyntax
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[i+2:])
			if r < 0 {
				return nil, errJSONSyntax
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = hex4(s[i+2:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return nil, errJSONSyntax
		}
		i += 2
	}
	return out, nil
}

// hex4 reads four hex digits, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unique reports errDuplicateMember when two names are equal. It may
// reorder names. Small objects compare pairwise; large ones sort, so a
// token with thousands of members costs n log n, not n squared.
func unique(names [][]byte) error {
	if len(names) <= 16 {
		for i := range names {
			for j := i + 1; j < len(names); j++ {
				if bytes.Equal(names[i], names[j]) {
					return errDuplicateMember
				}
			}
		}
		return nil
	}
	slices.SortFunc(names, bytes.Compare)
	for i := 1; i < len(names); i++ {
		if bytes.Equal(names[i-1], names[i]) {
			return errDuplicateMember
		}
	}
	return nil
}
