// Package testsrv owns loopback servers that inject known delays and
// failures, so probe tests can prove each phase is measured where it happens.
package testsrv

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNS is an authoritative DNS server on 127.0.0.1, UDP and TCP on one port,
// answering from records added with Add. A name with no records at all is
// NXDOMAIN; a name with records of other types gets an empty NOERROR.
type DNS struct {
	Addr string // 127.0.0.1:PORT, the same port for UDP and TCP

	tb      testing.TB
	done    chan struct{}
	stopped sync.Once
	mu      sync.Mutex
	rrs     map[string][]dns.RR // by lower-case FQDN
	rcode   map[string]int
	trunc   map[string]bool
	delay   time.Duration
	queries map[string]int // by transport: "udp", "tcp" (dot too), "doh GET HTTP/2.0", …
}

// NewDNS starts a DNS server holding records given in presentation format
// ("svc.test. 60 IN A 127.0.0.1"). It stops when the test ends.
func NewDNS(tb testing.TB, records ...string) *DNS {
	tb.Helper()
	s := &DNS{tb: tb, done: make(chan struct{}), rrs: map[string][]dns.RR{},
		rcode: map[string]int{}, trunc: map[string]bool{}, queries: map[string]int{}}
	s.Add(records...)
	pc, ln := listenUDPAndTCP(tb)
	s.Addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		tb.Cleanup(func() { srv.Shutdown() })
	}
	tb.Cleanup(s.stop) // runs first: wakes delayed answers
	return s
}

// listenUDPAndTCP finds a loopback port free for both UDP and TCP.
func listenUDPAndTCP(tb testing.TB) (net.PacketConn, net.Listener) {
	tb.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("cannot listen on UDP loopback: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	tb.Fatalf("cannot find a loopback port free for both UDP and TCP")
	return nil, nil
}

// Add adds records in presentation format.
func (s *DNS) Add(records ...string) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil || rr == nil {
			s.tb.Fatalf("cannot parse record %q: %v", text, err)
		}
		name := strings.ToLower(rr.Header().Name)
		s.rrs[name] = append(s.rrs[name], rr)
	}
}

// SetDelay makes every later answer wait d before it is sent.
func (s *DNS) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetRcode makes every answer for name carry rcode (dns.RcodeServerFailure, …).
func (s *DNS) SetRcode(name string, rcode int) {
	s.mu.Lock()
	s.rcode[key(name)] = rcode
	s.mu.Unlock()
}

// Truncate makes UDP answers for name empty with the TC bit set, so a
// client has to ask again over TCP.
func (s *DNS) Truncate(name string) {
	s.mu.Lock()
	s.trunc[key(name)] = true
	s.mu.Unlock()
}

// Queries says how many queries arrived over network ("udp" or "tcp").
func (s *DNS) Queries(network string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[network]
}

// stop wakes delayed answers for good, so servers can shut down.
func (s *DNS) stop() { s.stopped.Do(func() { close(s.done) }) }

func key(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// ServeDNS answers one query.
func (s *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	network := w.RemoteAddr().Network()
	if s.count(network) {
		w.WriteMsg(s.answer(req, network))
	}
}

// count counts a query that came over network and waits out the delay;
// false if the test ended meanwhile.
func (s *DNS) count(network string) bool {
	s.mu.Lock()
	s.queries[network]++
	delay := s.delay
	s.mu.Unlock()
	if delay <= 0 {
		return true
	}
	select {
	case <-time.After(delay):
		return true
	case <-s.done:
		return false
	}
}

func (s *DNS) answer(req *dns.Msg, network string) *dns.Msg {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true // the Go resolver calls an answer without either a lame referral
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rc, ok := s.rcode[name]; ok {
		m.Rcode = rc
		return m
	}
	if s.trunc[name] && network == "udp" {
		m.Truncated = true
		return m
	}
	rrs, ok := s.rrs[name]
	if !ok {
		m.Rcode = dns.RcodeNameError
		return m
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	return m
}
