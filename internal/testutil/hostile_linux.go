package testutil

import (
	"net"
	"syscall"
	"unsafe"
)

// unacked is how many bytes written to c its peer has not acknowledged yet
// (SIOCOUTQ): 0 means everything written is in the peer's socket.
func unacked(c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	_ = raw.Control(func(fd uintptr) {
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
		if errno != 0 {
			n = 0
		}
	})
	return int(n)
}
