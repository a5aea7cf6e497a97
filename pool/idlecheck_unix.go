//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package pool

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// check peeks at the socket without blocking.
func (c *upstreamConn) check() idleState {
	for try := 0; try < 2; try++ {
		err := c.raw.Read(c.peekFn)
		if err == nil {
			return c.state
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return idleBroken
		}
		// The read deadline of the last exchange passed while the
		// connection sat idle, and RawConn.Read then refuses to call
		// peekFn. Clear it: the exchange about to start sets its own.
		if c.SetReadDeadline(time.Time{}) != nil {
			return idleBroken
		}
	}
	return idleBroken
}

// peek is handed to RawConn.Read. It always returns true: false would make
// Read wait for the socket to become readable, and an idle connection that
// is fine never does.
func (c *upstreamConn) peek(fd uintptr) bool {
	for try := 0; try < 3; try++ {
		n, _, err := syscall.Recvfrom(int(fd), c.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			c.state = idleQuiet
		case err != nil:
			c.state = idleBroken // ECONNRESET, ETIMEDOUT, ...
		case n == 0:
			c.state = idleEOF
		default:
			c.state = idleData
		}
		return true
	}
	c.state = idleBroken // interrupted three times: don't trust it
	return true
}
