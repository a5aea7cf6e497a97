// Package pathnorm normalises a request path the way RFC 3986 section 6
// says, so that sluice routes on, and forwards, one unambiguous path.
//
// The bug it exists to prevent: a proxy that routes on the raw bytes and
// forwards them unchanged lets "/public/..%2Fadmin" match a public route
// while an upstream that decodes %2F and resolves ".." serves /admin. The
// cure is to route on a normal form and forward exactly that form, and to
// refuse (400) what can't be normalised without guessing what the upstream
// will make of it.
//
// What Normalize does, in order of the RFC sections it follows:
//   - percent-encodings of unreserved characters (ALPHA, DIGIT, "-", ".",
//     "_", "~") are decoded (RFC 3986 2.3, 6.2.2.2); the hex digits of the
//     percent-encodings that stay are upper-cased (6.2.2.1);
//   - bytes that may not appear raw in a path (RFC 3986 3.3: anything but
//     unreserved, sub-delims, ":", "@" and "/") are percent-encoded, as
//     browsers do; raw non-ASCII must be valid UTF-8 and is encoded too
//     (the IRI-to-URI mapping, RFC 3987 3.1), so "/café" and "/caf%C3%A9"
//     are one path;
//   - literal "." and ".." segments are removed (RFC 3986 5.2.4), but ".."
//     above the root is an error, not clamped as 5.2.4 would: no client
//     that means well sends it (nginx answers 400 too);
//   - consecutive slashes are merged unless Options.KeepEmptySegments;
//   - %2F and %5C are handled by Options.EscapedSlashes (reject, keep or
//     decode; see Action);
//   - and these are always refused: "." or ".." spelt with %2E, dot
//     segments with ";" parameters ("..;", ".;x": Tomcat reads them as dot
//     segments), dot segments next to an encoded slash, raw backslashes,
//     malformed percent-encodings, NUL and other control characters raw
//     or encoded, and bytes that are not valid UTF-8 (overlong forms such
//     as %C0%AE included). In reject mode, also %25 followed by the hex of
//     ".", "/" or "\" (double encoding).
//
// Invariants (FuzzNormalize checks them):
//   - a normalised path starts with "/", contains no "." or ".." segment,
//     and normalising it again gives it back unchanged;
//   - percent-decoding it once (as an upstream would) gives no "." or ".."
//     segment either, split at "/" or "\", and valid UTF-8; outside keep
//     mode it gives no "/" or "\" that was not a literal "/";
//   - with slashes merged it contains no "//";
//   - keep mode accepts a superset of what reject mode accepts: a path
//     normalises in reject mode exactly when it does in keep mode with
//     Info.RejectErr() == nil, and then to the same bytes. That is what
//     lets a gateway normalise once in keep mode, route, and only then
//     apply the route's own Action.
//   - Normalize allocates nothing when dst has room (a path grows at most
//     three times); it never panics on any input.
//
// The package imports nothing of sluice's and nothing outside the standard
// library; edge calls it, never the other way round.
package pathnorm
