package pathnorm

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// want is the expected result of one case: the normalised path, or err.
type want struct {
	out string
	err Error
}

func ok(out string) want { return want{out: out} }
func fails(e Error) want { return want{err: e} }
func (w want) String() string {
	if w.err != 0 {
		return w.err.Error()
	}
	return "ok " + w.out
}

func check(t *testing.T, name, in string, o Options, w want) {
	t.Helper()
	out, _, err := Normalize(make([]byte, 0, 8), []byte(in), o)
	switch {
	case w.err != 0 && err != w.err:
		t.Errorf("%s: Normalize(%q, %v) = %q, %v; want %v", name, in, o.EscapedSlashes, out, err, w.err)
	case w.err == 0 && (err != nil || string(out) != w.out):
		t.Errorf("%s: Normalize(%q, %v) = %q, %v; want %q", name, in, o.EscapedSlashes, out, err, w.out)
	}
}

var modes = []Action{Reject, Keep, Decode}

// Cases whose answer does not depend on the Action. Each names the rule it
// checks.
var sameInEveryMode = []struct {
	rfc, in string
	want    want
}{
	// Already normal: forwarded as sent.
	{"RFC 3986 6.2.2 (already normal)", "/api/users/42", ok("/api/users/42")},
	{"RFC 3986 3.3 (root)", "/", ok("/")},
	{"RFC 3986 3.3 (sub-delims, : and @ stay raw)", "/a!$&'()*+,;=:@b/c", ok("/a!$&'()*+,;=:@b/c")},
	{"RFC 3986 3.3 (trailing slash kept)", "/a/b/", ok("/a/b/")},
	{"RFC 3986 3.3 (dots inside names are not dot segments)", "/.well-known/a.b/...", ok("/.well-known/a.b/...")},
	{"RFC 3986 3.3 (..x and x.. are names)", "/..x/x../.x.", ok("/..x/x../.x.")},
	{"RFC 3986 3.3 (path parameters without dots)", "/a;v=1/;x/b", ok("/a;v=1/;x/b")},

	// Forms and the empty path.
	{"RFC 3986 6.2.3, RFC 9112 3.2.1 (empty path is /)", "", ok("/")},
	{"RFC 9112 3.2.4 (asterisk-form names no path)", "*", fails(ErrNotOriginForm)},
	{"RFC 9112 3.2.1 (origin-form starts with /)", "api/x", fails(ErrNotOriginForm)},

	// Percent-encoding normalisation.
	{"RFC 3986 6.2.2.1 (hex upper-cased)", "/a%3bb%3f", ok("/a%3Bb%3F")},
	{"RFC 3986 6.2.2.2 (unreserved decoded)", "/%41%62%63/%7e%2D%5f%30", ok("/Abc/~-_0")},
	{"RFC 3986 6.2.2.2 (adm%69n is admin)", "/adm%69n/x", ok("/admin/x")},
	{"RFC 3986 2.2 (encoded reserved stays encoded)", "/a%3Db%40c%3A", ok("/a%3Db%40c%3A")},
	{"RFC 3986 2.4 (%25 stays)", "/100%25/%2541", ok("/100%25/%2541")},
	{"RFC 3986 3.3, 2.1 (raw non-pchar is encoded)", "/a|b\"c{d}^`<>[]#", ok("/a%7Cb%22c%7Bd%7D%5E%60%3C%3E%5B%5D%23")},
	{"RFC 3987 3.1 (raw UTF-8 is encoded)", "/caf\u00e9", ok("/caf%C3%A9")},
	{"RFC 3987 3.1 (raw and encoded UTF-8 are one path)", "/caf%c3%a9", ok("/caf%C3%A9")},
	{"RFC 3629 3 (UTF-8 half raw, half encoded)", "/caf\xc3%a9", ok("/caf%C3%A9")},
	{"RFC 3629 3 (U+FFFD itself is valid)", "/\xef\xbf\xbd", ok("/%EF%BF%BD")},
	{"RFC 3629 3 (four bytes)", "/%F0%9F%98%80", ok("/%F0%9F%98%80")},

	// Malformed percent-encodings.
	{"RFC 3986 2.1 (lone %)", "/%", fails(ErrBadPercent)},
	{"RFC 3986 2.1 (one hex digit)", "/%2", fails(ErrBadPercent)},
	{"RFC 3986 2.1 (not hex)", "/%zz/a", fails(ErrBadPercent)},
	{"RFC 3986 2.1 (second digit not hex)", "/%2g", fails(ErrBadPercent)},
	{"RFC 3986 2.1 (truncated inside UTF-8)", "/%c3%", fails(ErrBadPercent)},

	// Control characters.
	{"RFC 3986 2 (%00)", "/a%00b", fails(ErrControl)},
	{"RFC 3986 2 (raw NUL)", "/a\x00b", fails(ErrControl)},
	{"RFC 3986 2 (encoded CR LF)", "/a%0D%0AX-Injected:1", fails(ErrControl)},
	{"RFC 3986 2 (raw tab)", "/a\tb", fails(ErrControl)},
	{"RFC 3986 2 (DEL)", "/%7f", fails(ErrControl)},

	// Invalid UTF-8.
	{"RFC 3629 10 (overlong . as %C0%AE)", "/%c0%ae/x", fails(ErrInvalidUTF8)},
	{"RFC 3629 10 (overlong .. as %C0%AE%C0%AE)", "/api/%c0%ae%c0%ae/__stub/echo", fails(ErrInvalidUTF8)},
	{"RFC 3629 10 (three-byte overlong .)", "/%e0%80%ae", fails(ErrInvalidUTF8)},
	{"RFC 3629 10 (overlong / as %C0%AF)", "/a%c0%afb", fails(ErrInvalidUTF8)},
	{"RFC 3629 10 (raw overlong /)", "/a\xc0\xafb", fails(ErrInvalidUTF8)},
	{"RFC 3629 3 (surrogate)", "/%ed%a0%80", fails(ErrInvalidUTF8)},
	{"RFC 3629 3 (above U+10FFFF)", "/%f4%90%80%80", fails(ErrInvalidUTF8)},
	{"RFC 3629 3 (lone continuation byte)", "/%80", fails(ErrInvalidUTF8)},
	{"RFC 3629 3 (truncated at the end)", "/%c3", fails(ErrInvalidUTF8)},
	{"RFC 3629 3 (truncated by a slash)", "/%c3/%a9", fails(ErrInvalidUTF8)},
	{"RFC 3629 3 (raw 0xFF)", "/\xff", fails(ErrInvalidUTF8)},

	// Dot segments.
	{"RFC 3986 5.2.4 (/./)", "/a/./b", ok("/a/b")},
	{"RFC 3986 5.2.4 (/../)", "/a/../b", ok("/b")},
	{"RFC 3986 5.2.4 (several)", "/a/b/c/./../../g", ok("/a/g")},
	{"RFC 3986 5.2.4 (trailing /..)", "/a/b/..", ok("/a/")},
	{"RFC 3986 5.2.4 (trailing /.)", "/a/b/.", ok("/a/b/")},
	{"RFC 3986 5.2.4 (/.)", "/.", ok("/")},
	{"RFC 3986 5.2.4 (/a/..)", "/a/..", ok("/")},
	{"RFC 3986 5.2.4 (after decoding a letter)", "/a/%62/../c", ok("/a/c")},
	{"RFC 3986 5.2.4 (.. above the root is refused, not clamped)", "/..", fails(ErrAboveRoot)},
	{"RFC 3986 5.2.4 (.. above the root, later)", "/a/../../b", fails(ErrAboveRoot)},
	{"RFC 3986 5.2.4 (.. above the root, first)", "/../etc/passwd", fails(ErrAboveRoot)},
	{"RFC 3986 5.2.4 (/./..)", "/./..", fails(ErrAboveRoot)},

	// Encoded dot segments.
	{"RFC 3986 6.2.2.2 (%2e)", "/a/%2e/b", fails(ErrEncodedDotSegment)},
	{"RFC 3986 6.2.2.2 (%2e%2e)", "/api/%2e%2e/__stub/echo", fails(ErrEncodedDotSegment)},
	{"RFC 3986 6.2.2.2 (mixed case %2E%2e)", "/api/%2E%2e/__stub/echo", fails(ErrEncodedDotSegment)},
	{"RFC 3986 6.2.2.2 (half encoded .%2E)", "/api/.%2E/__stub/echo", fails(ErrEncodedDotSegment)},
	{"RFC 3986 6.2.2.2 (at the end)", "/api/%2e%2E", fails(ErrEncodedDotSegment)},
	{"RFC 3986 6.2.2.2 (%2e%2ex is a name)", "/%2e%2ex", ok("/..x")},

	// Dot segments with parameters.
	{"RFC 3986 3.3 (..;)", "/api/..;/__stub/echo", fails(ErrDotSegmentParam)},
	{"RFC 3986 3.3 (..;jsessionid)", "/api/..;jsessionid=1/__stub", fails(ErrDotSegmentParam)},
	{"RFC 3986 3.3 (.;x)", "/api/.;x/__stub", fails(ErrDotSegmentParam)},
	{"RFC 3986 3.3 (..%3B)", "/api/..%3b/__stub", fails(ErrDotSegmentParam)},
	{"RFC 3986 3.3 (%2e%2e;)", "/api/%2e%2e;/__stub", fails(ErrDotSegmentParam)},
	{"RFC 3986 3.3 (at the end)", "/api/..;", fails(ErrDotSegmentParam)},

	// Raw backslashes.
	{"RFC 3986 2 (raw backslash)", "/a\\b", fails(ErrBackslash)},
	{"RFC 3986 2 (..\\)", "/api/..\\__stub/echo", fails(ErrBackslash)},
}

func TestNormalizeSameInEveryMode(t *testing.T) {
	for _, c := range sameInEveryMode {
		for _, m := range modes {
			check(t, c.rfc, c.in, Options{EscapedSlashes: m}, c.want)
		}
	}
}

// Encoded slashes, backslashes and double encoding: one answer per Action
// (reject, keep, decode).
var byMode = []struct {
	rfc, in string
	want    [3]want
}{
	{"RFC 3986 2.2 (%2F)", "/a%2fb", [3]want{fails(ErrEncodedSlash), ok("/a%2Fb"), ok("/a/b")}},
	{"RFC 3986 2.2 (%2F, upper case)", "/files/a%2Fb", [3]want{fails(ErrEncodedSlash), ok("/files/a%2Fb"), ok("/files/a/b")}},
	{"RFC 3986 2.2 (%5C is never a raw backslash)", "/a%5cb", [3]want{fails(ErrEncodedBackslash), ok("/a%5Cb"), ok("/a/b")}},
	{"RFC 3986 2.2 (%2F%2F merges once decoded)", "/a%2F%2Fb", [3]want{fails(ErrEncodedSlash), ok("/a%2F%2Fb"), ok("/a/b")}},
	{"RFC 3986 2.2 (%2F at the start)", "/%2Fadmin/x", [3]want{fails(ErrEncodedSlash), ok("/%2Fadmin/x"), ok("/admin/x")}},
	{"RFC 3986 5.2.4 (..%2F)", "/api/..%2F__stub/echo", [3]want{fails(ErrEncodedSlash), fails(ErrDotSegmentEscapedSlash), fails(ErrDotSegmentEscapedSlash)}},
	{"RFC 3986 5.2.4 (..%2f)", "/api/..%2f__stub/echo", [3]want{fails(ErrEncodedSlash), fails(ErrDotSegmentEscapedSlash), fails(ErrDotSegmentEscapedSlash)}},
	{"RFC 3986 5.2.4 (..%5C)", "/api/..%5c__stub/echo", [3]want{fails(ErrEncodedBackslash), fails(ErrDotSegmentEscapedSlash), fails(ErrDotSegmentEscapedSlash)}},
	{"RFC 3986 5.2.4 (%2F..)", "/files/a%2F..", [3]want{fails(ErrEncodedSlash), fails(ErrDotSegmentEscapedSlash), fails(ErrDotSegmentEscapedSlash)}},
	{"RFC 3986 5.2.4 (%2F.%2F)", "/files/a%2F.%2Fb", [3]want{fails(ErrEncodedSlash), fails(ErrDotSegmentEscapedSlash), fails(ErrDotSegmentEscapedSlash)}},
	{"RFC 3986 5.2.4, 6.2.2.2 (%2e%2e%2f)", "/api/%2e%2e%2f__stub/echo", [3]want{fails(ErrEncodedSlash), fails(ErrEncodedDotSegment), fails(ErrEncodedDotSegment)}},
	{"RFC 3986 5.2.4, 6.2.2.2 (%2E%2e%2F)", "/api/%2E%2e%2F__stub/echo", [3]want{fails(ErrEncodedSlash), fails(ErrEncodedDotSegment), fails(ErrEncodedDotSegment)}},
	{"RFC 3986 2.4 (%252e%252e, double encoded)", "/api/%252e%252e/__stub/echo", [3]want{fails(ErrDoubleEncoded), ok("/api/%252e%252e/__stub/echo"), ok("/api/%252e%252e/__stub/echo")}},
	{"RFC 3986 2.4 (%252F)", "/api%252F__stub", [3]want{fails(ErrDoubleEncoded), ok("/api%252F__stub"), ok("/api%252F__stub")}},
	{"RFC 3986 2.4 (%255c)", "/api%255c__stub", [3]want{fails(ErrDoubleEncoded), ok("/api%255c__stub"), ok("/api%255c__stub")}},
	{"RFC 3986 2.4 (%25%32%65 is %252e too)", "/a%25%32%65", [3]want{fails(ErrDoubleEncoded), ok("/a%252e"), ok("/a%252e")}},
	{"RFC 3986 2.4 (%25%32e is %252e too)", "/a%25%32e/b", [3]want{fails(ErrDoubleEncoded), ok("/a%252e/b"), ok("/a%252e/b")}},
	{"RFC 3986 2.4 (%25 2 %46 is %252F too)", "/a%252%46", [3]want{fails(ErrDoubleEncoded), ok("/a%252F"), ok("/a%252F")}},
	{"RFC 3986 2.4 (%2541 is not)", "/a%2541", [3]want{ok("/a%2541"), ok("/a%2541"), ok("/a%2541")}},
}

func TestNormalizeEscapedSlashes(t *testing.T) {
	for _, c := range byMode {
		for i, m := range modes {
			check(t, c.rfc, c.in, Options{EscapedSlashes: m}, c.want[i])
		}
	}
}

// Merging: one answer with slashes merged (the default), one with
// KeepEmptySegments.
var merging = []struct {
	rfc, in          string
	merged, unmerged want
}{
	{"RFC 3986 3.3 (//admin is /admin once merged)", "//admin/x", ok("/admin/x"), ok("//admin/x")},
	{"RFC 3986 3.3 (runs of slashes)", "/a//b///c/", ok("/a/b/c/"), ok("/a//b///c/")},
	{"RFC 3986 3.3 (trailing //)", "/a//", ok("/a/"), ok("/a//")},
	{"RFC 3986 5.2.4 (.. removes an empty segment)", "/a//..", ok("/"), ok("/a/")},
	{"RFC 3986 5.2.4 (/..// )", "/a/..//b", ok("/b"), ok("//b")},
	{"RFC 3986 5.2.4 (/.//)", "/a/.//b", ok("/a/b"), ok("/a//b")},
}

func TestNormalizeMergeSlashes(t *testing.T) {
	for _, c := range merging {
		for _, m := range modes {
			check(t, c.rfc+" merged", c.in, Options{EscapedSlashes: m}, c.merged)
			check(t, c.rfc+" kept", c.in, Options{EscapedSlashes: m, KeepEmptySegments: true}, c.unmerged)
		}
	}
	// Decoded slashes merge like literal ones; kept ones are data.
	check(t, "RFC 3986 2.2 decode", "/a/%2F%2Fb", Options{EscapedSlashes: Decode}, ok("/a/b"))
	check(t, "RFC 3986 2.2 decode, kept", "/a/%2F%2Fb", Options{EscapedSlashes: Decode, KeepEmptySegments: true}, ok("/a///b"))
	check(t, "RFC 3986 2.2 keep", "/a/%2F%2Fb", Options{EscapedSlashes: Keep}, ok("/a/%2F%2Fb"))
}

// The path traversal found in sluice (2026-12): a public /api/ route next to
// a protected /__stub/. Every one of these was forwarded as sent and
// answered by the protected handler; nginx answered 401 to all. With the
// defaults each must now be refused, or normalise to a path that routes to
// /__stub/ itself. In keep and decode modes (a route's opt-in) the double
// encodings pass, still encoded, and must not reach /__stub/ at an upstream
// that decodes once, reads "\" as "/", strips ";" parameters and resolves
// dot segments.
func TestTraversalThroughPublicRouteIsRefused(t *testing.T) {
	attacks := []string{
		"/api/..%2F__stub/echo",
		"/api/..%2f__stub/echo",
		"/api/%2e%2e%2f__stub/echo",
		"/api/%2E%2E%2F__stub/echo",
		"/api/%2e%2e/__stub/echo",
		"/api/.%2e/__stub/echo",
		"/api/%252e%252e%252f__stub/echo",
		"/api/%252e%252e/__stub/echo",
		"/api/..;/__stub/echo",
		"/api/..;x/__stub/echo",
		"/api/..\\__stub/echo",
		"/api/..%5c__stub/echo",
		"/api/..%255c__stub/echo",
		"/api/%c0%ae%c0%ae/__stub/echo",
		"/api/%c0%ae%c0%ae%c0%af__stub/echo",
		"/api/../__stub/echo",
		"/api//../__stub/echo",
		"/api/./../__stub/echo",
		"//__stub/echo",
	}
	for _, m := range modes {
		for _, p := range attacks {
			out, _, err := Normalize(nil, []byte(p), Options{EscapedSlashes: m})
			if err != nil {
				continue
			}
			if m == Reject && !strings.HasPrefix(string(out), "/__stub/") {
				t.Errorf("%v: %q normalised to %q; want a 400, or a path that routes to /__stub/", m, p, out)
			}
			if up := upstreamView(out); strings.HasPrefix(string(out), "/api/") != strings.HasPrefix(up, "/api/") {
				t.Errorf("%v: %q normalised to %q, which an upstream reads as %q", m, p, out, up)
			}
		}
	}
}

// upstreamView is what the most lenient upstream makes of a forwarded path:
// it percent-decodes it once, reads "\" as "/", strips ";" parameters from
// each segment (Tomcat) and resolves dot segments, clamping at the root.
func upstreamView(p []byte) string {
	dec, err := url.PathUnescape(string(p))
	if err != nil {
		return "(undecodable)"
	}
	var segs []string
	for _, s := range strings.Split(strings.ReplaceAll(dec, "\\", "/"), "/")[1:] {
		s, _, _ = strings.Cut(s, ";")
		switch s {
		case ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	return "/" + strings.Join(segs, "/")
}

func TestNormalizeOwnership(t *testing.T) {
	t.Run("a normal path is returned itself, not copied", func(t *testing.T) {
		in := []byte("/api/users/42")
		out, info, err := Normalize(make([]byte, 0, 64), in, Options{})
		if err != nil || info.Changed || &out[0] != &in[0] || len(out) != len(in) {
			t.Fatalf("got %q %+v %v; want the input slice itself", out, info, err)
		}
	})
	t.Run("a changed path is appended to dst, and out is only the new part", func(t *testing.T) {
		dst := append(make([]byte, 0, 64), "prefix"...)
		out, info, err := Normalize(dst, []byte("/a/./b"), Options{})
		if err != nil || !info.Changed || string(out) != "/a/b" {
			t.Fatalf("got %q %+v %v", out, info, err)
		}
		if &out[0] != &dst[:cap(dst)][len(dst)] || string(dst) != "prefix" {
			t.Fatalf("out does not follow dst's contents in dst's array")
		}
	})
	t.Run("Changed is false for an equal copy", func(t *testing.T) {
		out, info, err := Normalize(nil, []byte("/a%252e"), Options{EscapedSlashes: Keep})
		if err != nil || info.Changed || string(out) != "/a%252e" {
			t.Fatalf("got %q %+v %v", out, info, err)
		}
	})
	t.Run("an error returns no path", func(t *testing.T) {
		out, _, err := Normalize(nil, []byte("/.."), Options{})
		if err == nil || out != nil {
			t.Fatalf("got %q %v", out, err)
		}
	})
}

// A gateway normalises once in keep mode, routes, then applies the route's
// own Action. Info must tell it everything reject mode would have refused.
func TestInfoRejectErrMatchesRejectMode(t *testing.T) {
	var all []string
	for _, c := range sameInEveryMode {
		all = append(all, c.in)
	}
	for _, c := range byMode {
		all = append(all, c.in)
	}
	for _, in := range all {
		kOut, kInfo, kErr := Normalize(nil, []byte(in), Options{EscapedSlashes: Keep})
		rOut, _, rErr := Normalize(nil, []byte(in), Options{EscapedSlashes: Reject})
		keepThenReject := kErr == nil && kInfo.RejectErr() == nil
		if keepThenReject != (rErr == nil) {
			t.Errorf("%q: keep gave %v with %+v, reject gave %v", in, kErr, kInfo, rErr)
		}
		if rErr == nil && !bytes.Equal(kOut, rOut) {
			t.Errorf("%q: keep gave %q, reject %q", in, kOut, rOut)
		}
	}
	if err := (Info{EncodedBackslash: true}).RejectErr(); err != ErrEncodedBackslash {
		t.Errorf("RejectErr = %v", err)
	}
	if err := (Info{DoubleEncoded: true}).RejectErr(); err != ErrDoubleEncoded {
		t.Errorf("RejectErr = %v", err)
	}
}

func TestInfoReportsEscapes(t *testing.T) {
	_, info, err := Normalize(nil, []byte("/a%2fb%5Cc%252e"), Options{EscapedSlashes: Keep})
	if err != nil || !info.EncodedSlash || !info.EncodedBackslash || !info.DoubleEncoded || !info.Escaped() || !info.Changed {
		t.Fatalf("info %+v, err %v", info, err)
	}
	_, info, _ = Normalize(nil, []byte("/a/./b%41"), Options{EscapedSlashes: Keep})
	if info.Escaped() {
		t.Fatalf("info %+v for a path without escapes", info)
	}
}

func TestActionParseAndString(t *testing.T) {
	for _, a := range modes {
		got, err := ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v", a.String(), got, err)
		}
	}
	if _, err := ParseAction("Reject"); err == nil {
		t.Error("ParseAction accepted \"Reject\"")
	}
	var zero Options
	if zero.EscapedSlashes != Reject || zero.KeepEmptySegments {
		t.Error("the zero Options are not the safe default")
	}
}

// Every reason has its own message, so a 400 says what was wrong.
func TestErrorsAreDistinct(t *testing.T) {
	seen := map[string]Error{}
	for e := ErrNotOriginForm; e <= ErrAboveRoot; e++ {
		s := e.String()
		if s == "" || s == Error(0).String() {
			t.Errorf("Error(%d) has no message", e)
		}
		if prev, ok := seen[s]; ok {
			t.Errorf("Error(%d) and Error(%d) share %q", e, prev, s)
		}
		seen[s] = e
		if !strings.HasPrefix(e.Error(), "pathnorm: ") {
			t.Errorf("Error(%d).Error() = %q", e, e.Error())
		}
		var target Error
		if !errors.As(error(e), &target) || target != e {
			t.Errorf("errors.As lost Error(%d)", e)
		}
	}
	if Error(200).String() != Error(0).String() {
		t.Error("an unknown Error has a message of its own")
	}
}
