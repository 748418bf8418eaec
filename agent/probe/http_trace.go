package probe

// Phase timing of one HTTP hop through httptrace hooks.

import (
	"context"
	"crypto/tls"
	"net"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// DNS itself (before the request) and the connect in pinnedDial; the
// httptrace hooks, which run on the transport's goroutines, time the rest.
// Everything after the request starts takes mu.
type httpTrace struct {
	mu        sync.Mutex
	start     time.Time
	addrKnown bool      // resolved, or the host was an address: no DNS phase to fail in
	deadline  time.Time // the check's, for dials the transport detaches

	dnsStart, dnsDone   time.Time
	connStart, connDone time.Time
	tlsStart, tlsDone   time.Time
	gotConn, firstByte  time.Time

	remoteIP string
	reused   bool
	tlsState *tls.ConnectionState
	tlsErr   error
}

type traceKey struct{}

// withTrace lets pinnedDial find the request's trace: the transport keeps
// the request context's values when it dials.
func withTrace(ctx context.Context, t *httpTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceFrom(ctx context.Context) *httpTrace {
	t, _ := ctx.Value(traceKey{}).(*httpTrace)
	return t
}

// mark records the time now into t under its lock; a nil t records nothing.
func (t *httpTrace) mark(f func(t *httpTrace, now time.Time)) {
	if t == nil {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t, now)
}

func (t *httpTrace) clientTrace() *httptrace.ClientTrace {
	at := func(f func(now time.Time)) {
		t.mark(func(_ *httpTrace, now time.Time) { f(now) })
	}
	return &httptrace.ClientTrace{
		TLSHandshakeStart: func() { at(func(now time.Time) { t.tlsStart = now }) },
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			at(func(now time.Time) { t.tlsDone, t.tlsState, t.tlsErr = now, &cs, err })
		},
		GotConn: func(info httptrace.GotConnInfo) {
			at(func(now time.Time) {
				t.gotConn, t.reused = now, info.Reused
				switch addr := info.Conn.RemoteAddr().(type) {
				case *net.TCPAddr:
					t.remoteIP = addr.IP.String()
				case *net.UDPAddr: // h3
					t.remoteIP = addr.IP.String()
				}
			})
		},
		GotFirstResponseByte: func() { at(func(now time.Time) { t.firstByte = now }) },
	}
}

// phase says where a request that failed now was.
func (t *httpTrace) phase() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case !t.gotConn.IsZero():
		return PhaseHTTP
	case !t.tlsStart.IsZero():
		return PhaseTLS
	case !t.connStart.IsZero() || t.addrKnown:
		return PhaseConnect
	}
	return PhaseDNS
}

// fillPhases sets each phase that started; one that had not ended by end
// (the request failed in it) counts up to end. Callers hold mu.
func (t *httpTrace) fillPhases(res *result.Result, end time.Time) {
	span := func(from, to time.Time) *float64 {
		if from.IsZero() {
			return nil
		}
		if to.IsZero() {
			to = end
		}
		return result.Ms(to.Sub(from))
	}
	res.DNSMs = span(t.dnsStart, t.dnsDone)
	res.ConnectMs = span(t.connStart, t.connDone)
	res.TLSMs = span(t.tlsStart, t.tlsDone)
	res.TTFBMs = span(t.gotConn, t.firstByte)
	res.TransferMs = span(t.firstByte, end)
	res.TotalMs = result.Ms(end.Sub(t.start))
}
