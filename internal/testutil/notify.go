package testutil

import (
	"net"
	"strings"
	"testing"
	"time"
)

// NotifySocket stands in for systemd's end of $NOTIFY_SOCKET (sd_notify(3)):
// a unixgram socket that collects the notifications a service sends.
type NotifySocket struct {
	Name string // for NOTIFY_SOCKET: a path, or "@name" (abstract)
	msgs chan string
}

// ListenNotify listens on name (a socket path, or "@name" in Linux's
// abstract namespace) until the test ends.
func ListenNotify(t testing.TB, name string) *NotifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &NotifySocket{Name: name, msgs: make(chan string, 1000)}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		defer close(n.msgs)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// Next returns the next notification that contains want, skipping the
// others (watchdog pings between the ones a test waits for). It fails
// the test after 10 s.
func (n *NotifySocket) Next(t testing.TB, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-timeout:
			t.Fatalf("no notification with %q within 10s", want)
		}
	}
}
