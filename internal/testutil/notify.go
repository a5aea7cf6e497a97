package testutil

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NotifySocket stands in for systemd's end of $NOTIFY_SOCKET (sd_notify(3)):
// a unixgram socket that collects the notifications a service sends, each
// with the sender's PID (SO_PASSCRED, as systemd reads it to apply
// NotifyAccess=).
type NotifySocket struct {
	Name string // for NOTIFY_SOCKET: a path, or "@name" (abstract)
	msgs chan Notification
}

// Notification is one datagram and the PID that sent it.
type Notification struct {
	Text string
	PID  int
	At   time.Time // when it was received
}

// ListenNotify listens on name (a socket path, or "@name" in Linux's
// abstract namespace) until the test ends.
func ListenNotify(t testing.TB, name string) *NotifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_PASSCRED: %v %v", err, serr)
	}
	n := &NotifySocket{Name: name, msgs: make(chan Notification, 1000)}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		defer close(n.msgs)
		buf := make([]byte, 4096)
		oob := make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
		for {
			k, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			m := Notification{Text: string(buf[:k]), At: time.Now()}
			if cmsgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, c := range cmsgs {
					if cred, err := syscall.ParseUnixCredentials(&c); err == nil {
						m.PID = int(cred.Pid)
					}
				}
			}
			n.msgs <- m
		}
	}()
	return n
}

// Next returns the next notification that contains want, skipping the
// others (watchdog pings between the ones a test waits for). It fails
// the test after 10 s.
func (n *NotifySocket) Next(t testing.TB, want string) string {
	t.Helper()
	return n.NextFrom(t, want).Text
}

// NextFrom is Next with the sender's PID.
func (n *NotifySocket) NextFrom(t testing.TB, want string) Notification {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", want)
			}
			if strings.Contains(m.Text, want) {
				return m
			}
		case <-timeout:
			t.Fatalf("no notification with %q within 10s", want)
		}
	}
}

// Manager follows the notifications the way systemd does for a unit with
// NotifyAccess=main: only the main PID's are accepted, and MAINPID= from
// it names a new main PID, unless that PID is not a live process (systemd
// refuses those: "New main PID N does not exist or is a zombie").
type Manager struct {
	Main       int
	Accepted   []Notification
	Refused    []Notification // sent by another PID than the main one
	DeadMainID []int          // MAINPID= values refused: no such live process
	// Watchdog, if set, is WatchdogSec: accepted WATCHDOG=1 further apart
	// than that are listed in Late (systemd would have killed the service).
	Watchdog time.Duration
	Late     []time.Duration
	lastPing time.Time
}

// Follow reads notifications until one accepted from the main PID
// contains want, applying MAINPID= as it goes. It fails the test after 10 s.
func (n *NotifySocket) Follow(t testing.TB, m *Manager, want string) Notification {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case msg, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", want)
			}
			if msg.PID != m.Main {
				m.Refused = append(m.Refused, msg)
				continue
			}
			m.Accepted = append(m.Accepted, msg)
			if strings.Contains(msg.Text, "WATCHDOG=1") {
				if gap := msg.At.Sub(m.lastPing); m.Watchdog > 0 && !m.lastPing.IsZero() && gap > m.Watchdog {
					m.Late = append(m.Late, gap)
				}
				m.lastPing = msg.At
			}
			for _, l := range strings.Split(msg.Text, "\n") {
				if v, ok := strings.CutPrefix(l, "MAINPID="); ok {
					if pid, err := strconv.Atoi(v); err == nil && !ProcessGone(pid) {
						m.Main = pid
					} else {
						m.DeadMainID = append(m.DeadMainID, pid)
					}
				}
			}
			if strings.Contains(msg.Text, want) {
				return msg
			}
		case <-timeout:
			t.Fatalf("no accepted notification with %q within 10s (main pid %d; accepted %+v; refused %+v)", want, m.Main, m.Accepted, m.Refused)
		}
	}
}
