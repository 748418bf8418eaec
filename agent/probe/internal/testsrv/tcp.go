package testsrv

import (
	"net"
	"sync"
	"testing"
)

// NewTCP listens on 127.0.0.1:0 and runs handle for every accepted
// connection; a nil handle holds the connection open and silent until the
// client closes it (a server that never answers). It returns HOST:PORT.
// Listener and open connections are closed when the test ends.
func NewTCP(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("cannot listen on TCP loopback: %v", err)
	}
	serve(tb, ln, handle)
	return ln.Addr().String()
}

// serve accepts on ln until the test ends.
func serve(tb testing.TB, ln net.Listener, handle func(net.Conn)) {
	if handle == nil {
		handle = hold
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

func hold(c net.Conn) {
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// ClosedPort returns a loopback HOST:PORT where nothing listens, so a
// connect is refused.
func ClosedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("cannot listen on TCP loopback: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
