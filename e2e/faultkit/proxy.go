// Package faultkit is the kit of the e2e fault-injection suite: a TCP proxy
// that delays, cuts, black-holes and resets connections while it reads the
// HTTP going through it, a ledger of every id produced and acknowledged,
// process and ClickHouse helpers.
package faultkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections to upstreams (round robin per
// connection, failing over to the next one that answers, as a load
// balancer does) and injects faults at the TCP level, where a real network
// fails: the HTTP client and server on either side see the genuine errors.
type Proxy struct {
	ln        net.Listener
	upstreams []string
	tap       func(Exchange)

	mu     sync.Mutex
	faults Faults
	conns  map[*pconn]struct{}
	next   int
	wg     sync.WaitGroup // connections being served
	ids    atomic.Int64
	closed chan struct{} // the accept loop ended
}

// proxies counts the proxies made, to stagger their round robins.
var proxies atomic.Int64

// Faults are what the proxy does to connections; the zero value forwards
// faithfully.
type Faults struct {
	Delay     time.Duration // before forwarding each chunk, both ways
	RespDelay time.Duration // more, server to client only: the request is in, its answer late
	Refuse    bool          // new connections are reset at once
	Blackhole bool          // new connections are accepted, read and never answered
	// ResetAfter, when positive, resets each new connection once this many
	// bytes of its first request's body went up: a request cut mid-body.
	ResetAfter int
	Pin        int // 1-based upstream to use alone; 0: round robin
}

// NewProxy listens on a free loopback port until tb ends. tap, if not nil,
// hears of every HTTP exchange that went through (see Exchange).
func NewProxy(tb testing.TB, upstreams []string, tap func(Exchange)) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// Proxies start their round robin one apart, so that senders each on
	// one kept-alive connection spread over the upstreams.
	p := &Proxy{ln: ln, upstreams: upstreams, tap: tap, conns: map[*pconn]struct{}{},
		next: int(proxies.Add(1)) % len(upstreams), closed: make(chan struct{})}
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's HOST:PORT; URL its http:// base URL.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }
func (p *Proxy) URL() string  { return "http://" + p.Addr() }

// Set replaces the faults; connections already open keep their reset and
// pin, but take new delays at once.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Heal forwards faithfully again (connections already cut stay cut).
func (p *Proxy) Heal() { p.Set(Faults{}) }

// Cut resets every open connection and refuses new ones until Heal: the
// link is down.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.faults.Refuse = true
	conns := make([]*pconn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

// Close stops listening and resets every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	<-p.closed // no connection is added once Wait runs
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer close(p.closed)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// pconn is one proxied connection.
type pconn struct {
	mu             sync.Mutex
	client, server net.Conn
	dead           bool
}

// attach adds the upstream side, unless the connection was reset meanwhile.
func (c *pconn) attach(server net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		rst(server)
		return false
	}
	c.server = server
	return true
}

// reset closes both sides with an RST, as a dead link or middlebox does.
func (c *pconn) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.dead = true
	rst(c.client)
	if c.server != nil {
		rst(c.server)
	}
}

func rst(n net.Conn) {
	if tc, ok := n.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	n.Close()
}

func (p *Proxy) serve(client net.Conn) {
	p.mu.Lock()
	f := p.faults
	pc := &pconn{client: client}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	defer func() {
		pc.reset()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	switch {
	case f.Refuse:
		return
	case f.Blackhole:
		io.Copy(io.Discard, client)
		return
	}
	server, up, err := p.dial(f.Pin)
	if err != nil || !pc.attach(server) {
		return
	}
	req, resp := newTee(), newTee()
	go readExchanges(p.ids.Add(1), up, req, resp, p.tap)
	done := make(chan struct{}, 2)
	go func() { p.pump(server, client, req, f.ResetAfter, pc, false); done <- struct{}{} }()
	go func() { p.pump(client, server, resp, 0, pc, true); done <- struct{}{} }()
	<-done // one way ended: the exchange is over, as HTTP/1.1 without half-close goes
	pc.reset()
	<-done
	req.Close()
	resp.Close()
}

// dial connects to the pinned upstream, or to the next one round robin,
// trying the others when it does not answer.
func (p *Proxy) dial(pin int) (net.Conn, string, error) {
	if pin > 0 {
		c, err := net.DialTimeout("tcp", p.upstreams[pin-1], 2*time.Second)
		return c, p.upstreams[pin-1], err
	}
	p.mu.Lock()
	first := p.next
	p.next = (p.next + 1) % len(p.upstreams)
	p.mu.Unlock()
	var errs []error
	for i := range p.upstreams {
		up := p.upstreams[(first+i)%len(p.upstreams)]
		c, err := net.DialTimeout("tcp", up, 2*time.Second)
		if err == nil {
			return c, up, nil
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

// pump copies src to dst (and to the tap's tee), delaying chunks as the
// faults say at the time, and resets the connection resetAfter bytes into
// the first request's body.
func (p *Proxy) pump(dst, src net.Conn, tap *tee, resetAfter int, pc *pconn, down bool) {
	buf := make([]byte, 32<<10)
	cut := newBodyCounter(resetAfter)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			reset := false
			if k, ok := cut.take(chunk); ok {
				chunk, reset = chunk[:k], true
			}
			p.mu.Lock()
			d := p.faults.Delay
			if down {
				d += p.faults.RespDelay
			}
			p.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			tap.Write(chunk)
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
			if reset {
				pc.reset()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// bodyCounter finds where a request's body starts (after the blank line
// ending its headers) and says where to cut it.
type bodyCounter struct {
	after   int // body bytes to let through; 0: never cut
	head    []byte
	inBody  bool
	counted int
}

func newBodyCounter(after int) *bodyCounter { return &bodyCounter{after: after} }

// take returns how many bytes of chunk to forward before the reset, and
// whether to reset after them.
func (b *bodyCounter) take(chunk []byte) (int, bool) {
	if b.after <= 0 {
		return 0, false
	}
	start := 0
	if !b.inBody {
		seen := len(b.head)
		b.head = append(b.head, chunk...)
		i := bytes.Index(b.head, []byte("\r\n\r\n"))
		if i < 0 {
			return 0, false
		}
		b.inBody = true
		start = i + 4 - seen
	}
	if left := b.after - b.counted; len(chunk)-start >= left {
		return start + left, true
	}
	b.counted += len(chunk) - start
	return 0, false
}

// String says where the proxy listens and what it does.
func (p *Proxy) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("proxy %s -> %v %+v", p.Addr(), p.upstreams, p.faults)
}
