package probe

// HTTP/3 for the http kind (proto: h3), and how its handshake is timed.
//
// QUIC has no handshake of its own before TLS: the client's first Initial
// packet carries the ClientHello and the server's first answer already
// carries its ServerHello, so one round trip does both jobs. The contract's
// phases split that exchange where the client can see a boundary:
//
//	connect_ms  from sending the first Initial to the first datagram back
//	            from the server (its Initial, with the ServerHello): one
//	            round trip, as TCP's SYN/SYN-ACK, plus whatever the server
//	            spent before answering the ClientHello (TCP+TLS counts that
//	            in tls_ms; QUIC cannot answer before its TLS stack has).
//	tls_ms      from that datagram to the handshake being complete at the
//	            client: the rest of the server's flight (certificate chain,
//	            which a large chain spreads over more datagrams and, under
//	            QUIC's 3x anti-amplification limit, more round trips), the
//	            certificate's verification, and the client's Finished.
//
// So connect_ms+tls_ms is the whole handshake, comparable to h1/h2's sum;
// connect_ms alone is the round trip plus the server's first answer. The
// first datagram's arrival is read off the client's own UDP socket
// (firstReadConn), not from quic-go's internals. A UDP port where nothing
// listens does not refuse: the handshake times out (connect_timeout).

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// hopTransport is what a hop's requests go through: net/http's transport
// for h1/h2, h3Transport for HTTP/3.
type hopTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

var (
	_ hopTransport = (*http.Transport)(nil)
	_ hopTransport = (*h3Transport)(nil)
)

// h3Transport is an HTTP/3 client whose every connection goes to addr,
// each over a UDP socket of its own that closes with it.
type h3Transport struct {
	rt   *http3.Transport
	addr netip.AddrPort

	mu    sync.Mutex
	socks []*quic.Transport
}

func newH3Transport(conf *tls.Config, addr netip.AddrPort) *h3Transport {
	t := &h3Transport{addr: addr}
	t.rt = &http3.Transport{TLSClientConfig: conf, Dial: t.dial,
		DisableCompression: true} // so http_bytes are the bytes on the wire
	return t
}

func (t *h3Transport) RoundTrip(r *http.Request) (*http.Response, error) { return t.rt.RoundTrip(r) }

// CloseIdleConnections closes the transport for good: a hop's transport
// is not used after its hop (and warm request) are done.
func (t *h3Transport) CloseIdleConnections() {
	t.rt.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.socks {
		s.Close()
		s.Conn.Close()
	}
	t.socks = nil
}

// dial opens a QUIC connection to the pinned address and times its
// handshake into the request's trace, split as the file comment says.
func (t *h3Transport) dial(ctx context.Context, _ string, conf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
	tr := traceFrom(ctx)
	if tr != nil && !tr.deadline.IsZero() {
		// http3 detaches dials from the request's cancellation; the
		// check's deadline still holds, and bounds the handshake.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, tr.deadline)
		defer cancel()
		qc = qc.Clone()
		qc.HandshakeIdleTimeout = max(time.Until(tr.deadline), time.Millisecond)
	}
	network := "udp4"
	if t.addr.Addr().Is6() {
		network = "udp6"
	}
	udp, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, err
	}
	pc := &firstReadConn{PacketConn: udp}
	qt := &quic.Transport{Conn: pc}
	t.mu.Lock()
	t.socks = append(t.socks, qt)
	t.mu.Unlock()

	tr.mark(func(tr *httpTrace, now time.Time) { tr.connStart = now })
	conn, err := qt.Dial(ctx, net.UDPAddrFromAddrPort(t.addr), conf, qc)
	first := pc.first()
	tr.mark(func(tr *httpTrace, now time.Time) {
		if first.IsZero() {
			return // no answer at all: still connecting when it failed
		}
		tr.connDone, tr.tlsStart, tr.tlsDone = first, first, now
		tr.tlsErr = err
		if conn != nil {
			cs := conn.ConnectionState().TLS
			tr.tlsState = &cs
		}
	})
	return conn, err
}

// firstReadConn is a UDP socket that notes when its first datagram came.
// It hides *net.UDPConn's ReadMsgUDP, so quic-go reads every datagram
// through ReadFrom (its plain path: no batch reads, ECN or GSO, which one
// short probe connection does not need).
type firstReadConn struct {
	net.PacketConn

	mu sync.Mutex
	at time.Time
}

func (c *firstReadConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if n > 0 {
		now := time.Now()
		c.mu.Lock()
		if c.at.IsZero() {
			c.at = now
		}
		c.mu.Unlock()
	}
	return n, addr, err
}

// SetReadBuffer and SetWriteBuffer keep the kernel's default buffers:
// quic-go asks for megabytes (and logs when it cannot have them), which a
// probe's one short connection does not need.
func (c *firstReadConn) SetReadBuffer(int) error  { return nil }
func (c *firstReadConn) SetWriteBuffer(int) error { return nil }

func (c *firstReadConn) first() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}
