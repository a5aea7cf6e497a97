package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// sluice under a (fake) systemd: READY=1 once it serves, WATCHDOG=1 every
// half WATCHDOG_USEC, RELOADING=1 and READY=1 around a SIGHUP reload,
// STOPPING=1 on SIGTERM. The socket is a path, as systemd's is.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	sd := testutil.ListenNotify(t, sock)
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: one, match: { prefix: / }, upstream: up }\n"),
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000") // a ping every 100 ms

	ready := sd.Next(t, "READY=1")
	if !strings.Contains(ready, "STATUS=serving 1 routes on "+s.Addr) {
		t.Errorf("READY without the status: %q", ready)
	}
	// Ready means serving: a request right after READY=1 is answered.
	if code, body := testutil.Get(t, "http://"+s.Addr+"/x"); code != 200 {
		t.Errorf("request after READY=1: %d %s", code, body)
	}

	start := time.Now()
	for i := 0; i < 3; i++ {
		sd.Next(t, "WATCHDOG=1")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("3 watchdog pings took %v with WATCHDOG_USEC=200ms", d)
	}

	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloading := sd.Next(t, "RELOADING=1")
	usec := ""
	for _, l := range strings.Split(reloading, "\n") {
		usec, _ = strings.CutPrefix(l, "MONOTONIC_USEC=")
		if usec != l {
			break
		}
	}
	if n, err := strconv.ParseInt(usec, 10, 64); err != nil || n <= 0 {
		t.Errorf("RELOADING=1 without a MONOTONIC_USEC: %q", reloading)
	}
	if m := sd.Next(t, "READY=1"); !strings.Contains(m, "STATUS=serving 1 routes") {
		t.Errorf("READY=1 after the reload: %q", m)
	}

	// A refused reload is still followed by READY=1 (the old config
	// serves), with the reason in STATUS.
	// (Written aside and renamed, so the watcher never reads it half done.)
	if err := os.WriteFile(s.ConfigPath+".new", []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.ConfigPath+".new", s.ConfigPath); err != nil {
		t.Fatal(err)
	}
	sd.Next(t, "RELOADING=1") // the file watcher's reload
	if m := sd.Next(t, "READY=1"); !strings.Contains(m, "STATUS=serving; the last reload was refused: "+s.ConfigPath+":1: (syntax)") {
		t.Errorf("READY=1 after a refused reload: %q", m)
	}

	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sd.Next(t, "STOPPING=1")
	if code, err := s.Wait(10 * time.Second); code != 0 || err != nil {
		t.Errorf("exit %d %v", code, err)
	}
}

// An abstract socket name ("@...", as systemd uses in containers) works
// too, and WATCHDOG_PID naming another process turns the pings off.
func TestSystemdNotifyAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@sluice-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	sd := testutil.ListenNotify(t, name)
	// The upstream answers after 100 ms, so sluice runs at least that
	// long between READY and STOPPING: ten 10 ms pings, had it sent any.
	up := testutil.StartUpstream(t, stub.Options{Name: "a", Latency: 100 * time.Millisecond})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: one, match: { prefix: / }, upstream: up }\n"),
		"NOTIFY_SOCKET="+name, "WATCHDOG_USEC=20000", "WATCHDOG_PID=1")
	sd.Next(t, "READY=1")
	if code, _ := testutil.Get(t, "http://"+s.Addr+"/slow"); code != 200 {
		t.Fatalf("request: %d", code)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		m := sd.Next(t, "=")
		if strings.Contains(m, "WATCHDOG=1") {
			t.Fatalf("watchdog ping with WATCHDOG_PID naming another process: %q", m)
		}
		if strings.Contains(m, "STOPPING=1") {
			break
		}
	}
	if code, err := s.Wait(10 * time.Second); code != 0 || err != nil {
		t.Errorf("exit %d %v", code, err)
	}
}
