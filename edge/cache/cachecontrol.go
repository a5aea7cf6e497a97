package cache

// Directives are the Cache-Control directives (RFC 9111 section 5.2) the
// cache acts on, parsed from one or more field lines. Durations are in
// seconds; -1 means the directive is absent.
type Directives struct {
	MaxAge, SMaxAge      int64
	StaleWhileRevalidate int64 // RFC 5861 section 3
	StaleIfError         int64 // RFC 5861 section 4
	NoStore, NoCache     bool
	Private, Public      bool
	MustRevalidate       bool // must-revalidate or proxy-revalidate
	MinFresh             int64
	OnlyIfCached         bool
	// Invalid: a directive that matters appeared with a value that can't
	// be read (max-age=abc). RFC 9111 4.2.1: such a response is treated
	// as stale; callers don't store it.
	Invalid bool
}

// maxDelta caps a delta-seconds value (RFC 9111 1.2.2: a value too large
// to hold is taken as 2^31).
const maxDelta = 1 << 31

// ParseCacheControl reads a Cache-Control field value. Directive names
// match case-insensitively; unknown directives are ignored (RFC 9111
// 5.2.3); quoted values are accepted for the numeric directives
// (5.2: "senders SHOULD NOT" quote them, so recipients tolerate it).
// When a directive repeats, the first value is kept for numbers and a
// flag stays set. It never allocates and never fails: garbage yields
// fewer directives, or Invalid.
func ParseCacheControl(v []byte, d *Directives) {
	for len(v) > 0 {
		var item []byte
		item, v = nextItem(v)
		name, val, hasVal := cutDirective(item)
		if len(name) == 0 {
			continue
		}
		switch {
		case eqFold(name, "max-age"):
			setDelta(&d.MaxAge, val, hasVal, d)
		case eqFold(name, "s-maxage"):
			setDelta(&d.SMaxAge, val, hasVal, d)
		case eqFold(name, "stale-while-revalidate"):
			setDelta(&d.StaleWhileRevalidate, val, hasVal, d)
		case eqFold(name, "stale-if-error"):
			setDelta(&d.StaleIfError, val, hasVal, d)
		case eqFold(name, "min-fresh"):
			setDelta(&d.MinFresh, val, hasVal, d)
		case eqFold(name, "no-store"):
			d.NoStore = true
		case eqFold(name, "no-cache"):
			// no-cache="Set-Cookie" (qualified form) is taken as the
			// unqualified one: stricter, and always correct (5.2.2.4).
			d.NoCache = true
		case eqFold(name, "private"):
			// Likewise private="field": a shared cache stores none of it.
			d.Private = true
		case eqFold(name, "public"):
			d.Public = true
		case eqFold(name, "must-revalidate"), eqFold(name, "proxy-revalidate"):
			d.MustRevalidate = true
		case eqFold(name, "only-if-cached"):
			d.OnlyIfCached = true
		}
	}
}

// Reset sets every directive to absent.
func (d *Directives) Reset() {
	*d = Directives{MaxAge: -1, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}
}

func setDelta(dst *int64, val []byte, hasVal bool, d *Directives) {
	if *dst >= 0 {
		return // the first occurrence wins
	}
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = val[1 : len(val)-1]
	}
	n, ok := parseDelta(val)
	if !hasVal || !ok {
		d.Invalid = true
		return
	}
	*dst = n
}

// parseDelta reads delta-seconds (RFC 9111 1.2.2): digits only, capped.
func parseDelta(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta), true
}

// nextItem splits off the next comma-separated item, skipping commas
// inside a quoted string.
func nextItem(v []byte) (item, rest []byte) {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return v[:i], v[i+1:]
		}
	}
	return v, nil
}

// cutDirective splits "name=value" and trims optional whitespace.
func cutDirective(item []byte) (name, val []byte, hasVal bool) {
	item = trimOWS(item)
	for i, c := range item {
		if c == '=' {
			return trimOWS(item[:i]), trimOWS(item[i+1:]), true
		}
	}
	return item, nil, false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold compares b with the lower-case ASCII s, ignoring b's case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
