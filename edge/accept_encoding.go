package edge

// Accept-Encoding (RFC 9110 12.5.3), parsed without allocating.

// coding is a content coding sluice can produce.
type coding uint8

const (
	codingIdentity coding = iota // no coding
	codingGzip
	codingBr
	codingZstd
	numCodings
)

var codingNames = [numCodings][]byte{nil, []byte("gzip"), []byte("br"), []byte("zstd")}

// acceptEncoding is what a request's Accept-Encoding says about each coding
// sluice knows: its q-value in thousandths (0 to 1000), or -1 when the
// header does not name it. star is the "*" member's.
type acceptEncoding struct {
	q    [numCodings]int16
	star int16
}

// parseAcceptEncoding parses an Accept-Encoding value:
//
//	Accept-Encoding = #( codings [ weight ] )
//	codings         = content-coding / "identity" / "*"
//	weight          = OWS ";" OWS "q=" qvalue
//
// Names are case-insensitive (8.4.1); "x-gzip" is gzip (8.4.1.3). A member
// with a malformed weight is ignored, as are other parameters' members.
// When a coding is named twice, the highest q counts.
func parseAcceptEncoding(v []byte) acceptEncoding {
	a := acceptEncoding{star: -1}
	for i := range a.q {
		a.q[i] = -1
	}
	for len(v) > 0 {
		var m []byte
		m, v = cutByte(v, ',')
		name, params := cutByte(m, ';')
		name = trimOWS(name)
		if len(name) == 0 {
			continue
		}
		q, ok := int16(1000), true
		params = trimOWS(params)
		if len(params) > 0 || hasByte(m, ';') {
			q, ok = parseWeight(params)
		}
		if !ok {
			continue
		}
		p := &a.star
		switch {
		case len(name) == 1 && name[0] == '*':
		case equalFoldASCII(name, "identity"):
			p = &a.q[codingIdentity]
		case equalFoldASCII(name, "gzip"), equalFoldASCII(name, "x-gzip"):
			p = &a.q[codingGzip]
		case equalFoldASCII(name, "br"):
			p = &a.q[codingBr]
		case equalFoldASCII(name, "zstd"):
			p = &a.q[codingZstd]
		default:
			continue
		}
		if q > *p {
			*p = q
		}
	}
	return a
}

// parseWeight parses `q=qvalue` (12.4.2): "0" [ "." 0*3DIGIT ] or
// "1" [ "." 0*3("0") ], in thousandths.
func parseWeight(p []byte) (int16, bool) {
	if len(p) < 3 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
		return 0, false
	}
	p = p[2:]
	if len(p) > 5 || (p[0] != '0' && p[0] != '1') {
		return 0, false
	}
	q := int16(p[0]-'0') * 1000
	if len(p) == 1 {
		return q, true
	}
	if p[1] != '.' {
		return 0, false
	}
	scale := int16(100)
	for _, c := range p[2:] {
		if c < '0' || c > '9' || (q == 1000 && c != '0') {
			return 0, false
		}
		q += int16(c-'0') * scale
		scale /= 10
	}
	return q, true
}

// weight is the q-value c gets: its own, else "*"'s, else 0 (not
// acceptable). identity is acceptable unless excluded (12.5.3).
func (a *acceptEncoding) weight(c coding) int16 {
	if q := a.q[c]; q >= 0 {
		return q
	}
	if a.star >= 0 {
		return a.star
	}
	if c == codingIdentity {
		return 1
	}
	return 0
}

// choose is the coding to answer with from those offered (sluice's order
// of preference): the one with the highest q-value, the first offered
// among equals; codingIdentity when none is acceptable. identityRefused
// reports "identity;q=0" (or "*;q=0" without identity): the client wants a
// coding even for an answer sluice would not otherwise compress.
func (a *acceptEncoding) choose(offered []coding) (best coding, identityRefused bool) {
	bq := int16(0)
	for _, c := range offered {
		if q := a.weight(c); q > bq {
			best, bq = c, q
		}
	}
	return best, a.weight(codingIdentity) == 0
}

func cutByte(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// trimOWS trims spaces and tabs (RFC 9110 5.6.3).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFoldASCII compares b with a lower-case ASCII s, ignoring b's case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
