package pool

import (
	"net"
	"time"
)

// Re-arming a connection's deadline costs a runtime timer update under a
// lock (internal/poll.setDeadlineImpl: about 900 instructions, a sixth of
// what sluice adds per request over a bare fasthttp proxy; bench/README.md,
// "Round two"). On a busy keep-alive upstream connection the deadline
// moves by a few microseconds per request. So the transport arms it a
// little later than asked, deadlineSlack of the timeout, and a following
// request whose deadline falls at or before the armed one, within that
// slack, keeps it. A timeout then fires up to 1/deadlineSlack later than
// configured, never earlier.
const deadlineSlack = 64

// setDeadlineCoarse sets conn's read and write deadline to d, or keeps the
// one armed by the last call when that is at most timeout/deadlineSlack
// after d. Connections not dialed by sluice get d exactly.
func setDeadlineCoarse(conn net.Conn, d time.Time, timeout time.Duration) error {
	uc, ok := conn.(*upstreamConn)
	if !ok || d.IsZero() || timeout <= 0 {
		return conn.SetDeadline(d)
	}
	slack := timeout / deadlineSlack
	if a := uc.armed; !a.IsZero() && !a.Before(d) && a.Sub(d) <= slack {
		return nil
	}
	uc.armed = d.Add(slack)
	if err := uc.TCPConn.SetDeadline(uc.armed); err != nil {
		uc.armed = time.Time{}
		return err
	}
	return nil
}

// Any other deadline change forgets the armed one: the next coarse set
// arms its own.

func (c *upstreamConn) SetDeadline(t time.Time) error {
	c.armed = time.Time{}
	return c.TCPConn.SetDeadline(t)
}

func (c *upstreamConn) SetReadDeadline(t time.Time) error {
	c.armed = time.Time{}
	return c.TCPConn.SetReadDeadline(t)
}

func (c *upstreamConn) SetWriteDeadline(t time.Time) error {
	c.armed = time.Time{}
	return c.TCPConn.SetWriteDeadline(t)
}
