package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// notifier tells systemd how sluice is doing, as sd_notify(3) says:
// newline-separated KEY=VALUE datagrams to the unix socket named by
// $NOTIFY_SOCKET (Type=notify units). sluice sends READY=1 once it
// serves, RELOADING=1 and then READY=1 around a reload, STOPPING=1 when
// it starts draining, and WATCHDOG=1 every half of $WATCHDOG_USEC. A nil
// notifier (no NOTIFY_SOCKET) sends nothing.
type notifier struct {
	conn *net.UnixConn
	// watchdog is half of WATCHDOG_USEC, 0 when there is no watchdog for
	// this process (unset, or WATCHDOG_PID names another).
	watchdog time.Duration
	warned   atomic.Bool
	warn     func(msg string, args ...any)
}

// newNotifier connects to $NOTIFY_SOCKET. A name starting with "@" is in
// Linux's abstract namespace; net.UnixAddr reads a leading "@" that way
// too (it becomes the NUL the kernel expects).
func newNotifier(warn func(msg string, args ...any)) (*notifier, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: %w", name, err)
	}
	n := &notifier{conn: conn, warn: warn}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if pid := os.Getenv("WATCHDOG_PID"); err == nil && usec > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(usec) * time.Microsecond / 2
	}
	return n, nil
}

// send writes one notification; the first failure is logged.
func (n *notifier) send(lines ...string) {
	if n == nil {
		return
	}
	if _, err := n.conn.Write([]byte(strings.Join(lines, "\n"))); err != nil && !n.warned.Swap(true) {
		n.warn("systemd notification failed; later failures are not logged", "error", err.Error())
	}
}

// withPing adds WATCHDOG=1 to lines when this process pings the
// watchdog: the handover message of the old process and the takeover
// message of the new one carry one, so the gap between the old one's
// last periodic ping and the new one's first stays under half a period
// (each would otherwise be up to half a period away from the handover).
func (n *notifier) withPing(lines ...string) []string {
	if n == nil || n.watchdog == 0 {
		return lines
	}
	return append(lines, "WATCHDOG=1")
}

func (n *notifier) ready(status string) { n.send("READY=1", "STATUS="+status) }

// reloading carries MONOTONIC_USEC, which Type=notify-reload (systemd
// 253 and later) needs to match the RELOADING=1 to its signal.
func (n *notifier) reloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send("RELOADING=1", "STATUS=reloading the config", "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1000, 10))
}

func (n *notifier) stopping() { n.send("STOPPING=1", "STATUS=draining in-flight requests") }

// pings returns a channel that ticks every half watchdog period, or nil
// (a channel that never ticks) without a watchdog. The caller sends
// WATCHDOG=1 from its main loop, so a loop that stops also stops the
// pings and systemd restarts sluice.
func (n *notifier) pings() (<-chan time.Time, func()) {
	if n == nil || n.watchdog == 0 {
		return nil, func() {}
	}
	t := time.NewTicker(n.watchdog)
	return t.C, t.Stop
}
