package pool

import (
	"io"
	"net"
	"syscall"
)

// A pooled keep-alive connection is only as clean as its last response.
// While it sits idle the upstream has nothing to say: bytes that arrive
// then (a late second response, the tail of a body longer than its
// Content-Length) would be read as the answer to the next request sent on
// it, and every later client on that connection would get the answer meant
// for the one before (found in sluice: issue #13). An EOF means the
// upstream closed it. nginx closes an idle cached upstream connection on
// any read event; sluice looks before each reuse, with one non-blocking
// MSG_PEEK on the socket, and closes the connection unless it is quiet.
//
// What the check can't see: bytes that arrive after it, while the next
// request is already on its way (HTTP/1.1 has no way to tell a late answer
// from the next one), and, on a TLS connection, records tls.Conn has
// already read from the socket and holds decrypted. A TLS 1.3 session
// ticket arriving late also counts as unsolicited: the connection is
// closed, which costs a handshake and never a wrong answer.

// idleState is what a connection taken from the idle pool holds.
type idleState uint8

const (
	idleQuiet  idleState = iota // nothing to read: reusable
	idleData                    // unsolicited bytes are waiting
	idleEOF                     // the upstream closed its side
	idleBroken                  // a reset or another socket error
)

func (s idleState) String() string {
	switch s {
	case idleQuiet:
		return "quiet"
	case idleData:
		return "unsolicited bytes"
	case idleEOF:
		return "closed by the upstream"
	}
	return "broken"
}

// upstreamConn is a dialed upstream TCP connection with what the idle check
// needs, made once per connection rather than once per request: net makes
// a new syscall.RawConn on every SyscallConn call, and a func value handed
// to RawConn.Read escapes, so building one per check would allocate.
type upstreamConn struct {
	*net.TCPConn
	raw    syscall.RawConn
	peekFn func(fd uintptr) bool // c.peek, bound once
	state  idleState             // what the last peek found
	buf    [1]byte               // one byte is enough to know there is data
	// eof: a read of the socket found the upstream's side closed. A
	// chunked body's reader can't tell a hang-up right after a chunk
	// from its clean end (fasthttp's chunk-size parser returns a bare
	// io.EOF for both); the socket can, since a clean end is read from
	// bytes that arrived, never from the close (see hungUp).
	eof bool
	// deadline is the read and write deadline setDeadlineCoarse last
	// armed (deadline.go); forgotten on any other deadline change.
	deadline CoarseDeadline
}

// Read reads the socket, noting when it finds the upstream's side closed.
func (c *upstreamConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// hungUp reports whether a read of c (or of the socket under a TLS c)
// has found the upstream's side closed. A connection sluice didn't dial
// reports false.
func hungUp(c net.Conn) bool {
	uc, ok := socketOf(c)
	return ok && uc.eof
}

// socketOf is the connection sluice dialed under c: c itself, or the
// socket under a *tls.Conn. false: c was not dialed by sluice.
func socketOf(c net.Conn) (*upstreamConn, bool) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	uc, ok := c.(*upstreamConn)
	return uc, ok
}

// wrapConn prepares a freshly dialed connection for idle checks. A
// connection that is not TCP is returned as it is and never checked.
func wrapConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	uc := &upstreamConn{TCPConn: tc, raw: raw}
	uc.peekFn = uc.peek
	return uc
}

// checkIdle says what a connection taken from the idle pool holds. It
// neither reads nor waits: the peeked byte stays in the socket.
func checkIdle(c net.Conn) idleState {
	uc, ok := socketOf(c) // a *tls.Conn: look at the socket under it
	if !ok {
		return idleQuiet // not dialed by sluice: nothing to look with
	}
	return uc.check()
}
