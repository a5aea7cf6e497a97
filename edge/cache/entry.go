package cache

import (
	"encoding/binary"
	"errors"
	"time"
)

// Field is one stored response header field, its name as the upstream
// wrote it.
type Field struct{ Name, Value []byte }

// Entry is one stored answer, or a variant index (Index: the answer
// varies on the request fields in Vary, and each variant is stored under
// the primary key plus those fields' values, VaryKey). An Entry is
// immutable once stored: a refresh stores a new one. Times are Unix
// nanoseconds, durations nanoseconds.
type Entry struct {
	Key    string // the full key text, checked on every memory hit
	Route  string // the route that stored it (metrics)
	Status int
	Header []Field // no hop-by-hop fields, no Set-Cookie, no Age
	Body   []byte

	ResponseTime int64 // when the answer arrived (RFC 9111 4.2.3 response_time)
	InitialAge   int64 // corrected_initial_age (4.2.3)
	Lifetime     int64 // freshness_lifetime (4.2.1)
	SWR, SIE     int64 // stale-while-revalidate, stale-if-error windows (RFC 5861)
	// MustRevalidate: never served stale (must-revalidate, proxy-revalidate,
	// s-maxage: RFC 9111 5.2.2.2, 5.2.2.8, 5.2.2.10).
	MustRevalidate bool
	// NoCache: stored, but validated before every use (5.2.2.4).
	NoCache bool

	ETag, LastModified []byte
	Tags               []string // Surrogate-Key / Cache-Tag values, for purge
	Vary               []string // lower-case field names; set on an index and its variants
	Index              bool
}

// Age is the entry's current_age at now (RFC 9111 4.2.3).
func (e *Entry) Age(now int64) int64 {
	return e.InitialAge + max(0, now-e.ResponseTime)
}

// Fresh reports whether the entry may be served without validation.
func (e *Entry) Fresh(now int64) bool {
	return !e.NoCache && e.Age(now) < e.Lifetime
}

// Staleness is how long past its freshness lifetime the entry is at now
// (negative while fresh).
func (e *Entry) Staleness(now int64) int64 { return e.Age(now) - e.Lifetime }

// Validators reports whether the entry can be revalidated.
func (e *Entry) Validators() bool { return len(e.ETag) > 0 || len(e.LastModified) > 0 }

// keepForValidation is how long past its lifetime an entry with
// validators is kept, so a conditional request can refresh it instead
// of fetching it whole again.
const keepForValidation = int64(10 * time.Minute)

// Retain is how long a store keeps the entry from now: its remaining
// lifetime, plus the longest window it may still be served stale or
// revalidated in.
func (e *Entry) Retain(now int64) time.Duration {
	extra := max(e.SWR, e.SIE)
	if e.Validators() {
		extra = max(extra, keepForValidation)
	}
	if e.MustRevalidate && !e.Validators() {
		extra = 0
	}
	d := e.Lifetime - e.Age(now) + extra
	return time.Duration(max(d, int64(time.Second)))
}

// Size is what the entry costs a memory store, roughly: its bytes plus
// a fixed overhead for the struct and slices.
func (e *Entry) Size() int {
	n := 256 + len(e.Key) + len(e.Route) + len(e.Body) + len(e.ETag) + len(e.LastModified)
	for _, f := range e.Header {
		n += 48 + len(f.Name) + len(f.Value)
	}
	for _, s := range e.Tags {
		n += 16 + len(s)
	}
	for _, s := range e.Vary {
		n += 16 + len(s)
	}
	return n
}

// HasTag reports whether the entry carries tag.
func (e *Entry) HasTag(tag string) bool {
	for _, t := range e.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// entryMagic starts an encoded entry: a format change bumps it, and an
// entry of another format is a miss, never misread.
const entryMagic = "SLC1"

// ErrCorrupt: bytes from the shared store that are not an entry.
var ErrCorrupt = errors.New("cache: stored entry is corrupt")

// Marshal encodes e for a shared store.
func (e *Entry) Marshal() []byte {
	b := make([]byte, 0, e.Size())
	b = append(b, entryMagic...)
	b = appendStr(b, e.Key)
	b = appendStr(b, e.Route)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for _, f := range e.Header {
		b = appendBytes(b, f.Name)
		b = appendBytes(b, f.Value)
	}
	b = appendBytes(b, e.Body)
	for _, n := range [...]int64{e.ResponseTime, e.InitialAge, e.Lifetime, e.SWR, e.SIE} {
		b = binary.AppendVarint(b, n)
	}
	var flags byte
	if e.MustRevalidate {
		flags |= 1
	}
	if e.NoCache {
		flags |= 2
	}
	if e.Index {
		flags |= 4
	}
	b = append(b, flags)
	b = appendBytes(b, e.ETag)
	b = appendBytes(b, e.LastModified)
	b = appendStrs(b, e.Tags)
	return appendStrs(b, e.Vary)
}

// Unmarshal decodes what Marshal wrote. Anything else (truncated,
// another format, lengths past the end) is ErrCorrupt; it never panics.
func Unmarshal(b []byte) (*Entry, error) {
	d := decoder{b: b}
	if len(b) < len(entryMagic) || string(b[:len(entryMagic)]) != entryMagic {
		return nil, ErrCorrupt
	}
	d.b = b[len(entryMagic):]
	e := &Entry{}
	e.Key = d.str()
	e.Route = d.str()
	e.Status = int(d.uvarint(999))
	n := d.uvarint(1 << 12)
	if !d.bad {
		e.Header = make([]Field, 0, n)
	}
	for i := uint64(0); i < n && !d.bad; i++ {
		e.Header = append(e.Header, Field{Name: d.bytes(), Value: d.bytes()})
	}
	e.Body = d.bytes()
	for _, p := range [...]*int64{&e.ResponseTime, &e.InitialAge, &e.Lifetime, &e.SWR, &e.SIE} {
		*p = d.varint()
	}
	flags := d.byte()
	e.MustRevalidate, e.NoCache, e.Index = flags&1 != 0, flags&2 != 0, flags&4 != 0
	e.ETag = d.bytes()
	e.LastModified = d.bytes()
	e.Tags = d.strs()
	e.Vary = d.strs()
	if d.bad || len(d.b) != 0 || e.Status < 100 && !e.Index {
		return nil, ErrCorrupt
	}
	// The fields are written to clients as they are: an entry from the
	// shared store (another writer, a tampered Redis) must not be able to
	// split the answer or set a cookie.
	for _, f := range e.Header {
		if !validFieldName(f.Name) || !validFieldValue(f.Value) || eqFold(f.Name, "set-cookie") {
			return nil, ErrCorrupt
		}
	}
	return e, nil
}

// validFieldName: a token (RFC 9110 5.1).
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' || c == '"' || c == '(' || c == ')' || c == ',' || c == '/' ||
			c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' || c == '[' || c == '\\' ||
			c == ']' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// validFieldValue: no control characters but tab (RFC 9110 5.5).
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint(limit uint64) uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > limit {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.bad {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint(uint64(len(d.b)))
	if d.bad || n > uint64(len(d.b)) { // the length's own bytes are gone now
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) strs() []string {
	n := d.uvarint(64)
	var out []string
	for i := uint64(0); i < n && !d.bad; i++ {
		out = append(out, d.str())
	}
	return out
}
