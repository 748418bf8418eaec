package faultkit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"sync"
	"time"
)

// Exchange is one HTTP request that went through a Proxy and what came
// back. The tap hears of it twice: once the whole request went up
// (Final false: the upstream may be answering now), and once it is over
// (Final true: answered, or the connection ended first).
type Exchange struct {
	Conn     int64  // the proxied connection, in accept order
	Upstream string // where it went
	Method   string
	Path     string
	Header   http.Header
	// Body is the request body, gunzipped when it was gzip; Complete says
	// the whole request went up (else Body is what the proxy saw of it).
	Body     []byte
	Complete bool
	// Status is the upstream's answer as the proxy passed it on (0 when none
	// came back through the proxy), with its headers.
	Status     int
	RespHeader http.Header
	Sent, Done time.Time
	Final      bool
}

// readExchanges parses the bytes a proxied connection carried up (req) and
// down (resp) as HTTP/1.1 and tells tap about each exchange, in order. It
// never slows the connection: the tees buffer whatever it has not read.
func readExchanges(conn int64, upstream string, req, resp *tee, tap func(Exchange)) {
	pending := make(chan *Exchange, 64)
	go func() {
		defer close(pending)
		br := bufio.NewReader(req)
		defer io.Copy(io.Discard, br)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			ex := &Exchange{Conn: conn, Upstream: upstream, Method: r.Method, Path: r.URL.Path, Header: r.Header, Sent: time.Now()}
			body, err := io.ReadAll(r.Body)
			ex.Complete = err == nil
			ex.Body = gunzip(r.Header, body)
			if tap != nil && ex.Complete {
				tap(*ex)
			}
			pending <- ex
			if !ex.Complete {
				return
			}
		}
	}()
	br := bufio.NewReader(resp)
	defer io.Copy(io.Discard, br)
	broken := false
	for ex := range pending {
		if !broken {
			broken = !readAnswer(br, ex)
		}
		ex.Done, ex.Final = time.Now(), true
		if tap != nil {
			tap(*ex)
		}
	}
}

// readAnswer reads the final answer to ex (skipping 1xx); false when the
// stream broke first.
func readAnswer(br *bufio.Reader, ex *Exchange) bool {
	for {
		r, err := http.ReadResponse(br, &http.Request{Method: ex.Method})
		if err != nil {
			return false
		}
		_, err = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode >= 200 {
			if err != nil {
				return false // cut mid-answer: the sender never saw it whole
			}
			ex.Status, ex.RespHeader = r.StatusCode, r.Header
			return true
		}
	}
}

func gunzip(h http.Header, body []byte) []byte {
	if h.Get("Content-Encoding") != "gzip" {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return body
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return body
	}
	return out
}

// tee is an unbounded in-memory pipe: Write never blocks, so a slow reader
// never slows the proxied connection.
type tee struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool
}

func newTee() *tee {
	t := &tee{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *tee) Write(b []byte) {
	t.mu.Lock()
	t.buf = append(t.buf, b...)
	t.mu.Unlock()
	t.cond.Signal()
}

func (t *tee) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.buf) == 0 && !t.closed {
		t.cond.Wait()
	}
	if len(t.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	if len(t.buf) == 0 {
		t.buf = nil
	}
	return n, nil
}

func (t *tee) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cond.Broadcast()
}
