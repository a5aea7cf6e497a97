package pool

import (
	"net"
	"sync/atomic"
	"time"
)

// Re-arming a connection's deadline costs a runtime timer update under a
// lock (internal/poll.setDeadlineImpl: about 900 instructions, the largest
// single piece of what sluice adds per request over a bare fasthttp proxy;
// bench/README.md, "Round two"). On a busy keep-alive connection the
// deadline moves by a few microseconds per request. So a CoarseDeadline
// arms it a little later than asked, 1/DeadlineSlack of the timeout, and a
// following deadline that falls at or before the armed one, within that
// slack, keeps it. A timeout then fires up to 1/DeadlineSlack later than
// asked, never earlier.
const DeadlineSlack = 64

// CoarseDeadline is the deadline last armed on one connection (and one
// direction, or both). The zero value has none armed. Forget may be
// called from any goroutine (a stream stopped for a shutdown sets its
// connection's deadline from outside); Next is called by the one that
// owns the connection's requests.
type CoarseDeadline struct {
	armed atomic.Int64 // wall-clock UnixNano of the armed deadline; 0: none
	slack atomic.Int64 // the slack it was armed with, in nanoseconds
}

// Covers reports whether the armed deadline keeps d without a clock read:
// d falls at or before it, within the slack it was armed with. A caller
// that knows no timeout for d asks this first and computes one only when
// it must arm; d's timeout then fires up to 1/DeadlineSlack of the armed
// one's late (the armed timeout, when it was the longer).
func (c *CoarseDeadline) Covers(d time.Time) bool {
	if d.IsZero() {
		return false
	}
	a, dn := c.armed.Load(), d.UnixNano()
	return a != 0 && a >= dn && a-dn <= c.slack.Load()
}

// Next returns the deadline to arm for d, timeout away, and true; or
// false when the armed one already covers d. A zero d (no deadline) is
// always armed. Call Forget when arming fails.
func (c *CoarseDeadline) Next(d time.Time, timeout time.Duration) (time.Time, bool) {
	if d.IsZero() || timeout <= 0 {
		c.armed.Store(0)
		return d, true
	}
	slack := timeout / DeadlineSlack
	if a, dn := c.armed.Load(), d.UnixNano(); a != 0 && a >= dn && a-dn <= int64(slack) {
		return time.Time{}, false
	}
	arm := d.Add(slack)
	c.slack.Store(int64(slack))
	c.armed.Store(arm.UnixNano())
	return arm, true
}

// Forget drops the armed deadline: the connection's deadline was changed
// some other way, or arming it failed.
func (c *CoarseDeadline) Forget() { c.armed.Store(0) }

// setDeadlineCoarse sets conn's read and write deadline to d (timeout
// from now), or keeps the one armed by the last call when that covers d.
// Connections not dialed by sluice get d exactly.
func setDeadlineCoarse(conn net.Conn, d time.Time, timeout time.Duration) error {
	uc, ok := conn.(*upstreamConn)
	if !ok {
		return conn.SetDeadline(d)
	}
	t, arm := uc.deadline.Next(d, timeout)
	if !arm {
		return nil
	}
	err := uc.TCPConn.SetDeadline(t)
	if err != nil {
		uc.deadline.Forget()
	}
	return err
}

// Any other deadline change forgets the armed one: the next coarse set
// arms its own.

func (c *upstreamConn) SetDeadline(t time.Time) error {
	c.deadline.Forget()
	return c.TCPConn.SetDeadline(t)
}

func (c *upstreamConn) SetReadDeadline(t time.Time) error {
	c.deadline.Forget()
	return c.TCPConn.SetReadDeadline(t)
}

func (c *upstreamConn) SetWriteDeadline(t time.Time) error {
	c.deadline.Forget()
	return c.TCPConn.SetWriteDeadline(t)
}
