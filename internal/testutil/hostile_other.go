//go:build !linux

package testutil

import "net"

// unacked can't be read on this platform: InjectIdle returns once its
// writes are done.
func unacked(*net.TCPConn) int { return 0 }
