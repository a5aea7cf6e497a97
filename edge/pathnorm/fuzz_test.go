package pathnorm

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNormalize: any bytes, any Options. Normalize never panics, and what
// it accepts keeps the package's invariants (see doc.go).
func FuzzNormalize(f *testing.F) {
	for _, c := range sameInEveryMode {
		f.Add([]byte(c.in), uint8(0), false)
	}
	for _, c := range byMode {
		f.Add([]byte(c.in), uint8(1), false)
		f.Add([]byte(c.in), uint8(2), true)
	}
	for _, c := range merging {
		f.Add([]byte(c.in), uint8(2), false)
	}
	f.Fuzz(func(t *testing.T, path []byte, mode uint8, keepEmpty bool) {
		o := Options{EscapedSlashes: Action(mode % 3), KeepEmptySegments: keepEmpty}
		out, info, err := Normalize(nil, path, o)
		if err != nil {
			if e, ok := err.(Error); !ok || e < ErrNotOriginForm || e > ErrAboveRoot || out != nil {
				t.Fatalf("Normalize(%q, %+v) = %q, %#v: want nil and one of the Errors", path, o, out, err)
			}
		} else {
			checkNormal(t, path, out, info, o)
		}

		// Keep accepts exactly what Reject accepts plus the escapes Info
		// reports, with the same result: a gateway may normalise in keep
		// mode, route, and apply a route's reject afterwards.
		kOut, kInfo, kErr := Normalize(nil, path, Options{EscapedSlashes: Keep, KeepEmptySegments: keepEmpty})
		rOut, _, rErr := Normalize(nil, path, Options{EscapedSlashes: Reject, KeepEmptySegments: keepEmpty})
		if (kErr == nil && kInfo.RejectErr() == nil) != (rErr == nil) {
			t.Fatalf("%q: keep gave %v with %+v, reject gave %v", path, kErr, kInfo, rErr)
		}
		if rErr == nil && !bytes.Equal(kOut, rOut) {
			t.Fatalf("%q: keep gave %q, reject %q", path, kOut, rOut)
		}
		// Without escapes, the Action makes no difference at all.
		if kErr == nil && !kInfo.Escaped() {
			dOut, _, dErr := Normalize(nil, path, Options{EscapedSlashes: Decode, KeepEmptySegments: keepEmpty})
			if dErr != nil || !bytes.Equal(dOut, kOut) {
				t.Fatalf("%q: keep gave %q, decode %q, %v", path, kOut, dOut, dErr)
			}
		}
	})
}

// checkNormal checks the invariants of an accepted path's result.
func checkNormal(t *testing.T, in, out []byte, info Info, o Options) {
	t.Helper()
	if len(out) == 0 || out[0] != '/' {
		t.Fatalf("Normalize(%q, %+v) = %q: does not start with /", in, o, out)
	}
	if max := 3 * len(in); len(out) > max && len(in) > 0 {
		t.Fatalf("Normalize(%q) = %q: longer than 3x", in, out)
	}
	if !info.Changed && !bytes.Equal(out, in) {
		t.Fatalf("Normalize(%q) = %q with Changed false", in, out)
	}
	again, info2, err := Normalize(nil, out, o)
	if err != nil || !bytes.Equal(again, out) || info2.Changed {
		t.Fatalf("not idempotent: %q -> %q -> %q, %+v, %v", in, out, again, info2, err)
	}
	if !o.KeepEmptySegments && bytes.Contains(out, []byte("//")) {
		t.Fatalf("Normalize(%q) = %q: // left with slashes merged", in, out)
	}
	// Canonical bytes: raw only what may stay raw; every escape upper-case
	// and of a byte that may not be raw.
	for i := 0; i < len(out); i++ {
		switch class[out[i]] {
		case clsRaw, clsUnreserved, clsSlash:
		case clsPercent:
			if i+2 >= len(out) || !isUpperHex(out[i+1]) || !isUpperHex(out[i+2]) {
				t.Fatalf("Normalize(%q) = %q: bad escape at %d", in, out, i)
			}
			if c := unhex(out[i+1])<<4 | unhex(out[i+2]); class[c] == clsUnreserved {
				t.Fatalf("Normalize(%q) = %q: unreserved %q left encoded", in, out, c)
			}
			i += 2
		default:
			t.Fatalf("Normalize(%q) = %q: raw %q", in, out, out[i])
		}
	}
	for _, seg := range strings.Split(string(out), "/") {
		if isDot(seg) {
			t.Fatalf("Normalize(%q) = %q: dot segment left", in, out)
		}
	}
	// What an upstream sees once it percent-decodes the path: valid UTF-8,
	// no dot segment (parameters stripped) whether it splits at "/" or
	// "\", and, unless encoded slashes are kept, no "/" that sluice did not
	// route on and no "\".
	dec, err := url.PathUnescape(string(out))
	if err != nil {
		t.Fatalf("Normalize(%q) = %q: PathUnescape: %v", in, out, err)
	}
	if !utf8.ValidString(dec) {
		t.Fatalf("Normalize(%q) = %q: decodes to invalid UTF-8", in, out)
	}
	for _, seg := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
		if before, _, _ := strings.Cut(seg, ";"); isDot(before) {
			t.Fatalf("Normalize(%q) = %q: decodes to %q, with dot segment %q", in, out, dec, seg)
		}
	}
	if o.EscapedSlashes == Reject {
		up := strings.ToUpper(string(out))
		for _, dbl := range []string{"%252E", "%252F", "%255C"} {
			if strings.Contains(up, dbl) {
				t.Fatalf("Normalize(%q) = %q: double encoding left in reject mode", in, out)
			}
		}
	}
	if o.EscapedSlashes != Keep {
		if strings.Count(dec, "/") != bytes.Count(out, []byte("/")) || strings.Contains(dec, "\\") {
			t.Fatalf("Normalize(%q, %v) = %q: decodes to %q, with new slashes", in, o.EscapedSlashes, out, dec)
		}
	}
}

func isDot(seg string) bool { return seg == "." || seg == ".." }

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }
