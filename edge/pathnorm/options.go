package pathnorm

import "fmt"

// Action is what Normalize does with an encoded slash (%2F) or backslash
// (%5C), any case. The zero value is Reject.
type Action uint8

const (
	// Reject refuses %2F and %5C (ErrEncodedSlash, ErrEncodedBackslash),
	// and %25 followed by the hex of ".", "/" or "\" (ErrDoubleEncoded).
	// The default: an upstream that decodes them sees a different path
	// than the one routed on.
	Reject Action = iota
	// Keep forwards %2F and %5C still encoded (hex upper-cased), for APIs
	// whose identifiers contain slashes (/files/a%2Fb). They are data: the
	// path is not split into segments at them and "//" merging doesn't
	// see them. A "." or ".." next to one is still refused
	// (ErrDotSegmentEscapedSlash), so an upstream that does decode them
	// can't resolve a dot segment through one; that the decoded path
	// stays inside the same route is for the caller to check (the gateway
	// matches it again).
	Keep
	// Decode turns %2F into "/" and %5C into "/" too (never into a raw
	// "\", which some upstreams read as a separator and others as data),
	// as Envoy's UNESCAPE_AND_FORWARD plus normalize_path does. The
	// decoded slashes then separate segments like any other, merging
	// included; a "." or ".." next to one is refused rather than resolved
	// (ErrDotSegmentEscapedSlash).
	Decode
)

var actionNames = [...]string{Reject: "reject", Keep: "keep", Decode: "decode"}

// String is the config spelling: "reject", "keep" or "decode".
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// ParseAction reads the config spelling of an Action.
func ParseAction(s string) (Action, error) {
	for a, name := range actionNames {
		if s == name {
			return Action(a), nil
		}
	}
	return Reject, fmt.Errorf("want reject, keep or decode, got %q", s)
}

// Options choose what Normalize does where RFC 3986 leaves a choice. The
// zero value is the safe default: slashes merged, encoded slashes refused.
type Options struct {
	// KeepEmptySegments leaves "//" as it is. Zero (the default): runs of
	// "/" are merged into one, so a public "/" route in front of a
	// protected "/admin/" can't be passed with "//admin/x" to an upstream
	// that merges slashes itself.
	KeepEmptySegments bool
	// EscapedSlashes is what to do with %2F and %5C. Zero: Reject.
	EscapedSlashes Action
}

// Info says what Normalize met on the way, beyond the result.
type Info struct {
	// Changed: the normalised path differs from the input, so the request
	// line must be rewritten before forwarding. When false, out is the
	// input itself or an equal copy.
	Changed bool
	// EncodedSlash: the path had %2F (Keep and Decode modes; in Reject
	// mode it is an error).
	EncodedSlash bool
	// EncodedBackslash: the path had %5C.
	EncodedBackslash bool
	// DoubleEncoded: the path had %25 followed by the hex of ".", "/" or
	// "\" (only an error in Reject mode).
	DoubleEncoded bool
}

// Escaped reports whether the result depends on the Action: with no
// encoded slash, backslash or double encoding, every Action gives the same
// result.
func (i Info) Escaped() bool { return i.EncodedSlash || i.EncodedBackslash || i.DoubleEncoded }

// RejectErr says whether Reject mode accepts a path that Keep mode
// normalised with this Info: nil when it does (and then to the same
// result), else the reason it refuses it (when a path has several, not
// necessarily the one Reject mode would have met first). A gateway that
// normalised in Keep mode uses it to apply a route's Reject after routing.
func (i Info) RejectErr() error {
	switch {
	case i.EncodedSlash:
		return ErrEncodedSlash
	case i.EncodedBackslash:
		return ErrEncodedBackslash
	case i.DoubleEncoded:
		return ErrDoubleEncoded
	}
	return nil
}
