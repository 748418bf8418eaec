package probe

// Which HTTP version a hop speaks (the proto option), and the rate its
// body came at (throughput_bps).

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// httpProtocols is what net/http may speak for proto (h3 has its own
// transport): nil for auto, which keeps net/http's choice (h2 when ALPN
// agrees on it over TLS, else HTTP/1.1).
func httpProtocols(proto string, u *url.URL) *http.Protocols {
	p := new(http.Protocols)
	switch {
	case proto == checkdef.ProtoH1:
		p.SetHTTP1(true)
	case proto == checkdef.ProtoH2 && u.Scheme == "https":
		p.SetHTTP2(true)
	case proto == checkdef.ProtoH2:
		p.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	default:
		return nil
	}
	return p
}

// protoMismatch says when a server answered in another HTTP version than
// the check insists on, so a result never claims h2 for an HTTP/1.1 answer.
func protoMismatch(proto string, resp *http.Response) error {
	want := map[string]int{checkdef.ProtoH1: 1, checkdef.ProtoH2: 2, checkdef.ProtoH3: 3}[proto]
	if want == 0 || resp.ProtoMajor == want {
		return nil
	}
	return fmt.Errorf("server answered over %s, want %s; use proto: auto to accept either", resp.Proto, proto)
}

// bodyClock times a body as it is read: when its first bytes came, when
// its last did, and how many came in all and in the first read.
type bodyClock struct {
	r           io.Reader
	first, last time.Time
	firstN, n   int64
}

func (b *bodyClock) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		now := time.Now()
		if b.first.IsZero() {
			b.first, b.firstN = now, int64(n)
		}
		b.last = now
		b.n += int64(n)
	}
	return n, err
}

// bps is the body's rate in bits per second, from its first byte to its
// last only: set-up and server think time do not dilute it. The bytes of
// the first read had arrived before the clock could start, so the rate is
// the bytes after them over the time after them. nil when the body came in
// one read (too fast to time) or faster than the contract's ceiling.
func (b *bodyClock) bps() *float64 {
	d := b.last.Sub(b.first)
	if d <= 0 || b.n == b.firstN {
		return nil
	}
	v := float64(b.n-b.firstN) * 8 / d.Seconds()
	if v > result.MaxThroughputBps {
		return nil
	}
	return &v
}
