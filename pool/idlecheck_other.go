//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package pool

// check can't peek on this platform: a reused connection is trusted, as
// fasthttp's own client does. Bytes left over from a response are still
// caught by the transport (it never reuses a connection with bytes read
// past the end of a response).
func (c *upstreamConn) check() idleState { return idleQuiet }

func (c *upstreamConn) peek(uintptr) bool { return true }
