package testutil

import (
	"net"
	"testing"
	"time"
)

// Listen opens a TCP listener on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// DeadAddr returns a loopback address nothing listens on.
func DeadAddr(t testing.TB) string {
	ln := Listen(t)
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// ListenRetry listens on addr, retrying for a second while a just-closed
// listener's port is released (to restart a server on its old port).
func ListenRetry(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}
