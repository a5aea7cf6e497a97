package edge

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// A client connection's write deadline is armed coarsely, but every
// deadline change that matters reaches the socket: an earlier deadline,
// none, and one set after SetDeadline changed it underneath.
func TestLingerConnWriteDeadline(t *testing.T) {
	c, _ := acceptLingerConn(t)
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

// A client connection's read deadline is armed lazily, at the next read,
// and coarsely, but every read waits under the deadline last asked for:
// one that expired before the read fails it, one set while a read is
// blocked (from another goroutine, as a tunnel's close does) wakes it,
// io.Copy's WriteTo path arms it too, and SetDeadline overrides a noted
// one.
func TestLingerConnReadDeadline(t *testing.T) {
	c, peer := acceptLingerConn(t)
	hour := func() time.Time { return time.Now().Add(time.Hour) }
	past := time.Now().Add(-time.Second)
	buf := make([]byte, 8)
	expired := func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

	// Far, then past before any read: the read sees the past one.
	if err := c.SetReadDeadline(hour()); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(past); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !expired(err) {
		t.Fatalf("read after a past deadline: %v, want deadline exceeded", err)
	}
	// Past, then far: the read waits and gets the peer's byte.
	_ = c.SetReadDeadline(past)
	_ = c.SetReadDeadline(hour())
	if _, err := peer.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("read under a far deadline: %d, %v", n, err)
	}
	// A deadline set while a read blocks wakes it.
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		done <- err
	}()
	testutil.WaitFor(t, "the read to start", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.reading > 0 })
	if err := c.SetReadDeadline(past); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !expired(err) {
			t.Fatalf("blocked read woken with %v, want deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a deadline set during a blocked read did not wake it")
	}
	// io.Copy reads through WriteTo: a noted past deadline ends it (after
	// a read has armed a far one).
	_ = c.SetReadDeadline(hour())
	if _, err := peer.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("read under a far deadline: %d, %v", n, err)
	}
	_ = c.SetReadDeadline(past)
	go func() {
		_, err := io.Copy(io.Discard, c)
		done <- err
	}()
	select {
	case err := <-done:
		if !expired(err) {
			t.Fatalf("io.Copy under a past deadline: %v, want deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("io.Copy did not see the past deadline noted before it")
	}
	// SetDeadline replaces a noted read deadline.
	_ = c.SetReadDeadline(past)
	_ = c.SetDeadline(hour())
	if _, err := peer.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("read after SetDeadline replaced a past read deadline: %d, %v", n, err)
	}
}

// With the client connection's read deadline armed lazily, both server
// timeouts still reach a keep-alive connection after its first request:
// idle_timeout closes it when no next request comes, and read_timeout
// ends a next request whose head stalls after its first bytes (the
// slow-head defence), although the idle deadline armed before it is far
// later.
func TestKeepAliveConnectionTimeouts(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "up"})
	cases := []struct {
		name, server string
		next         string // what the client sends after its first answer
	}{
		{"idle_timeout closes an idle connection", "server: { read_timeout: 1h, idle_timeout: 300ms }\n", ""},
		{"read_timeout ends a stalled second head", "server: { read_timeout: 300ms, idle_timeout: 1h }\n", "GET /b HTTP/1.1\r\nHost: x\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := startGateway(t, oneUpstream(up.URL, catchAll)+c.server)
			conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			if _, err := io.WriteString(conn, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("first request: %d", resp.StatusCode)
			}
			if _, err := io.WriteString(conn, c.next); err != nil {
				t.Fatal(err)
			}
			// The timeout under test is 300 ms, the other one an hour: the
			// connection must end well within this bound.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.Copy(io.Discard, br)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("sluice kept the connection open past the timeout under test")
			}
		})
	}
}

// acceptLingerConn dials a lingerListener on loopback and returns the
// accepted connection and the dialing side, both closed when the test
// ends.
func acceptLingerConn(t *testing.T) (*lingerConn, net.Conn) {
	t.Helper()
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
	t.Cleanup(func() { peer.Close() })
	c, ok := (<-accepted).(*lingerConn)
	if !ok {
		t.Fatal("the listener did not hand out a lingerConn")
	}
	t.Cleanup(func() { c.Close() })
	return c, peer
}
