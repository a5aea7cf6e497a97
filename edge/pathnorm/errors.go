package pathnorm

// Error is why a path was refused. Each value is a constant the gateway can
// switch on, count, or turn into a 400 with String as the message; the
// values are small integers, so returning one as an error allocates
// nothing.
type Error uint8

// The reasons a path is refused, each its own value.
const (
	// ErrNotOriginForm: the path does not start with "/" (e.g. "*", which
	// is for OPTIONS to the server as a whole, RFC 9112 3.2.4, and names no
	// route).
	ErrNotOriginForm Error = iota + 1
	// ErrBadPercent: "%" not followed by two hex digits (RFC 3986 2.1).
	ErrBadPercent
	// ErrControl: NUL or another control character (0x00-0x1F, 0x7F),
	// raw or percent-encoded. None has a use in a path; several end C
	// strings or split log and header lines.
	ErrControl
	// ErrInvalidUTF8: raw or percent-encoded bytes that are not valid
	// UTF-8, overlong forms (%C0%AE for ".", %C0%AF for "/") and
	// surrogates included (RFC 3629 3 and 10).
	ErrInvalidUTF8
	// ErrBackslash: a raw "\". Windows servers, IIS and WHATWG URL parsers
	// read it as "/", others as data; there is no way to forward it that
	// every upstream reads the same (RFC 3986 2: it is not a URI
	// character).
	ErrBackslash
	// ErrEncodedSlash: %2F in reject mode.
	ErrEncodedSlash
	// ErrEncodedBackslash: %5C in reject mode.
	ErrEncodedBackslash
	// ErrDoubleEncoded: %25 followed by the hex of ".", "/" or "\" (%252E,
	// %252F, %255C) in reject mode: an upstream that decodes twice would
	// see a dot or a slash sluice did not route on.
	ErrDoubleEncoded
	// ErrEncodedDotSegment: a segment that is "." or ".." only once %2E is
	// decoded ("%2e%2e", ".%2E"). RFC 3986 6.2.2.2 makes it a dot segment,
	// but resolving it would mean resolving what the client took care to
	// hide; no honest client encodes an unreserved dot.
	ErrEncodedDotSegment
	// ErrDotSegmentParam: a "." or ".." segment with ";" parameters
	// ("..;", ".;x", also "..%3B"), which Tomcat and Spring strip and then
	// resolve as a dot segment.
	ErrDotSegmentParam
	// ErrDotSegmentEscapedSlash: a "." or ".." next to an encoded slash or
	// backslash ("..%2F", "a%5C.."), in keep and decode modes. Kept, an
	// upstream that decodes %2F would resolve it; decoded, it would be a
	// dot segment the client could only make by encoding a slash.
	ErrDotSegmentEscapedSlash
	// ErrAboveRoot: ".." with no segment left to remove ("/..", "/a/../..").
	// RFC 3986 5.2.4 would clamp it at the root; sluice refuses it, as
	// nginx does.
	ErrAboveRoot
)

var errText = [...]string{
	0:                         "path is not normalised",
	ErrNotOriginForm:          "path does not start with /",
	ErrBadPercent:             "malformed percent-encoding in path",
	ErrControl:                "control character in path",
	ErrInvalidUTF8:            "path is not valid UTF-8",
	ErrBackslash:              "backslash in path",
	ErrEncodedSlash:           "encoded slash (%2F) in path",
	ErrEncodedBackslash:       "encoded backslash (%5C) in path",
	ErrDoubleEncoded:          "double-encoded dot, slash or backslash in path",
	ErrEncodedDotSegment:      "encoded dot segment (%2E) in path",
	ErrDotSegmentParam:        "dot segment with parameters (;) in path",
	ErrDotSegmentEscapedSlash: "dot segment next to an encoded slash in path",
	ErrAboveRoot:              "path goes above the root (..)",
}

// String is the short message for the client's 400 body, e.g. "encoded
// slash (%2F) in path".
func (e Error) String() string {
	if int(e) < len(errText) {
		return errText[e]
	}
	return errText[0]
}

// Error implements error: "pathnorm: " and String.
func (e Error) Error() string { return "pathnorm: " + e.String() }

var _ error = Error(0)
