package testsrv

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// H3 is an HTTP/3 server on 127.0.0.1 that can hold parts of its QUIC
// handshake, so tests can prove where a probe counts each.
type H3 struct {
	Addr string // 127.0.0.1:PORT (UDP)
}

// H3Config says what an HTTP/3 server serves and what it delays.
type H3Config struct {
	Cert    tls.Certificate
	Handler http.Handler
	// First holds the server's first datagram to each client (its Initial,
	// with the ServerHello, and what is coalesced with it), as a slow path
	// to the server would.
	First time.Duration
	// Flight sends the first datagram's Initial packet on time and holds
	// the Handshake packets coalesced behind it (certificate, Finished) and
	// everything after them, as a server whose flight needs more round
	// trips would.
	Flight time.Duration
	// Port, when set, is the UDP port to listen on (as an Alt-Svc header
	// advertised it); 0 picks a free one.
	Port int
}

// NewH3 starts an HTTP/3 server; it stops when the test ends.
func NewH3(tb testing.TB, cfg H3Config) *H3 {
	tb.Helper()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: cfg.Port})
	if err != nil {
		tb.Fatalf("cannot listen on UDP loopback: %v", err)
	}
	done := make(chan struct{})
	pc := &holdConn{PacketConn: udp, first: cfg.First, flight: cfg.Flight, done: done, state: map[string]int{}}
	srv := &http3.Server{Handler: cfg.Handler,
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cfg.Cert}})}
	go srv.Serve(pc)
	tb.Cleanup(func() {
		close(done) // wakes held writes before the server waits for them
		srv.Close()
		udp.Close()
	})
	return &H3{Addr: udp.LocalAddr().String()}
}

// holdConn is the server's UDP socket, holding what it first sends each
// client address. Hiding *net.UDPConn's batch methods makes quic-go write
// every datagram through WriteTo, in order: a held datagram holds the
// ones after it.
type holdConn struct {
	net.PacketConn
	first, flight time.Duration
	done          chan struct{}

	mu    sync.Mutex
	state map[string]int // per client address: 0 new, 1 flight still to hold, 2 done
}

func (c *holdConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	size, key := len(b), addr.String()
	c.mu.Lock()
	state := c.state[key]
	c.state[key] = 2
	c.mu.Unlock()
	switch state {
	case 0:
		c.wait(c.first)
		if n := initialLen(b); c.flight > 0 && n > 0 {
			if _, err := c.PacketConn.WriteTo(b[:n], addr); err != nil || n == len(b) {
				c.mu.Lock()
				c.state[key] = 1 // the Initial came alone: the next datagram is the flight
				c.mu.Unlock()
				return size, err
			}
			b = b[n:]
			c.wait(c.flight)
		}
	case 1:
		c.wait(c.flight)
	}
	if _, err := c.PacketConn.WriteTo(b, addr); err != nil {
		return 0, err
	}
	return size, nil
}

// SetReadBuffer and SetWriteBuffer keep the default buffers, as a test
// needs no more, and keep quic-go from logging that it cannot set them.
func (c *holdConn) SetReadBuffer(int) error  { return nil }
func (c *holdConn) SetWriteBuffer(int) error { return nil }

func (c *holdConn) wait(d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-c.done:
	}
}

// initialLen is the length of the QUIC v1 Initial packet at the start of
// b (RFC 9000 17.2.2), or 0 if b does not start with one.
func initialLen(b []byte) int {
	if len(b) < 7 || b[0]&0xc0 != 0xc0 || b[0]&0x30 != 0 || binary.BigEndian.Uint32(b[1:5]) != 1 {
		return 0
	}
	pos := 5
	for range 2 { // destination, then source connection ID
		if pos >= len(b) {
			return 0
		}
		pos += 1 + int(b[pos])
	}
	for range 2 { // the token, then the packet number and payload
		if pos >= len(b) {
			return 0
		}
		v, n, err := quicvarint.Parse(b[pos:])
		if err != nil {
			return 0
		}
		pos += n + int(v)
	}
	if pos > len(b) {
		return 0
	}
	return pos
}
