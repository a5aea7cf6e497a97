package edge

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// A client connection's write deadline is armed coarsely, but every
// deadline change that matters reaches the socket: an earlier deadline,
// none, and one set after SetDeadline changed it underneath.
func TestLingerConnWriteDeadline(t *testing.T) {
	ln := testutil.Listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lingerListener{ln}.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, ok := (<-accepted).(*lingerConn)
	if !ok {
		t.Fatal("the listener did not hand out a lingerConn")
	}
	defer c.Close()
	hour := func() time.Time { return time.Now().Add(time.Hour) }
	past := time.Now().Add(-time.Second)
	steps := []struct {
		name    string
		set     func() error
		expired bool // the next write fails with a deadline error
	}{
		{"far deadline", func() error { return c.SetWriteDeadline(hour()) }, false},
		{"earlier deadline after it: re-armed", func() error { return c.SetWriteDeadline(past) }, true},
		{"no deadline", func() error { return c.SetWriteDeadline(time.Time{}) }, false},
		{"far deadline again", func() error { return c.SetWriteDeadline(hour()) }, false},
		{"SetDeadline in the past", func() error { return c.SetDeadline(past) }, true},
		{"far write deadline after SetDeadline: re-armed", func() error { return c.SetWriteDeadline(hour()) }, false},
	}
	for _, s := range steps {
		if err := s.set(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		_, err := c.Write([]byte("x"))
		if got := errors.Is(err, os.ErrDeadlineExceeded); got != s.expired {
			t.Errorf("%s: write error %v, want expired=%v", s.name, err, s.expired)
		}
	}
}
