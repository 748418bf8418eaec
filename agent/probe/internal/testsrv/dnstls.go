package testsrv

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/miekg/dns"
)

// ServeDoT serves s's records over DNS over TLS (RFC 7858) on a new
// loopback port, holding each ServerHello for cfg.Delay; s's own delay
// still holds each answer. It returns 127.0.0.1:PORT; queries count as
// "tcp".
func (s *DNS) ServeDoT(cfg TLSConfig) string {
	s.tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.tb.Fatalf("cannot listen on TCP loopback: %v", err)
	}
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{} // DoT names no ALPN protocol
	}
	srv := &dns.Server{Net: "tcp-tls", Listener: tls.NewListener(ln, s.heldTLS(cfg)), Handler: s}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	s.tb.Cleanup(func() { s.stop(); srv.Shutdown() })
	return ln.Addr().String()
}

// ServeDoH serves s's records over DNS over HTTPS (RFC 8484, GET and
// POST, h2 and HTTP/1.1) at /dns-query on a new loopback port, holding
// each ServerHello for cfg.Delay; s's own delay still holds each answer.
// It returns the URL; queries count as "doh METHOD PROTO".
func (s *DNS) ServeDoH(cfg TLSConfig) string {
	s.tb.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/dns-query", s.serveDoH)
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.TLS = s.heldTLS(cfg)
	srv.StartTLS()
	s.tb.Cleanup(func() { s.stop(); srv.Close() })
	return srv.URL + "/dns-query"
}

func (s *DNS) serveDoH(w http.ResponseWriter, r *http.Request) {
	var wire []byte
	var err error
	switch r.Method {
	case http.MethodGet:
		wire, err = base64.RawURLEncoding.DecodeString(r.URL.Query().Get("dns"))
	case http.MethodPost:
		if r.Header.Get("Content-Type") != "application/dns-message" {
			http.Error(w, "want application/dns-message", http.StatusUnsupportedMediaType)
			return
		}
		wire, err = io.ReadAll(io.LimitReader(r.Body, dns.MaxMsgSize))
	default:
		http.Error(w, "want GET or POST", http.StatusMethodNotAllowed)
		return
	}
	req := new(dns.Msg)
	if err != nil || req.Unpack(wire) != nil {
		http.Error(w, "not a DNS message", http.StatusBadRequest)
		return
	}
	if !s.count("doh " + r.Method + " " + r.Proto) {
		return
	}
	out, err := s.answer(req, "https").Pack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/dns-message")
	w.Write(out)
}

// heldTLS is a server TLS config that holds each ServerHello for
// cfg.Delay, so the delay lands in the client's handshake.
func (s *DNS) heldTLS(cfg TLSConfig) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cfg.Cert},
		NextProtos:   cfg.NextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			select {
			case <-time.After(cfg.Delay):
			case <-s.done:
			}
			return nil, nil
		},
	}
}
