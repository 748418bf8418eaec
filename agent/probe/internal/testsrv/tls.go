package testsrv

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"
)

// TLS is a TLS server on 127.0.0.1 that holds its ServerHello for Delay,
// so the delay lands in the client's handshake and nowhere else.
type TLS struct {
	Addr string // 127.0.0.1:PORT

	done chan struct{}
	mu   sync.Mutex
	sni  []string
}

// TLSConfig says what a TLS server serves.
type TLSConfig struct {
	Cert       tls.Certificate
	Delay      time.Duration // before the ServerHello
	NextProtos []string      // ALPN; nil means h2 and http/1.1
	OCSPStaple []byte        // stapled to the certificate when set
}

// NewTLS starts a TLS server; it stops when the test ends. After the
// handshake it holds the connection until the client closes it.
func NewTLS(tb testing.TB, cfg TLSConfig) *TLS {
	tb.Helper()
	s := &TLS{done: make(chan struct{})}
	cert := cfg.Cert
	cert.OCSPStaple = cfg.OCSPStaple
	protos := cfg.NextProtos
	if protos == nil {
		protos = []string{"h2", "http/1.1"}
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   protos,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.sni = append(s.sni, hello.ServerName)
			s.mu.Unlock()
			select {
			case <-time.After(cfg.Delay):
			case <-s.done:
			}
			return nil, nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("cannot listen on TCP loopback: %v", err)
	}
	s.Addr = ln.Addr().String()
	serve(tb, ln, func(c net.Conn) {
		tc := tls.Server(c, conf)
		if tc.Handshake() == nil {
			hold(tc)
		}
	})
	tb.Cleanup(func() { close(s.done) }) // runs first: wakes held handshakes
	return s
}

// SNI lists the server names clients sent, in order.
func (s *TLS) SNI() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sni...)
}
