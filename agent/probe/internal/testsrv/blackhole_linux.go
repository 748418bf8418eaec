package testsrv

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// Blackhole returns a loopback HOST:PORT whose connects hang until the
// client gives up: a listener with a backlog of zero that never accepts,
// its one queue slot filled, so the kernel drops further SYNs. It skips the
// test if the kernel completes connects anyway.
func Blackhole(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("cannot open socket: %v", err)
	}
	tb.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatalf("cannot bind loopback socket: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		tb.Fatalf("cannot listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatalf("cannot read socket address: %v", err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 150*time.Millisecond)
		if err != nil {
			return addr // the queue is full: connects now hang
		}
		tb.Cleanup(func() { c.Close() })
	}
	tb.Skipf("cannot make a blackhole on this kernel: connects to a full accept queue still complete")
	return ""
}
