package probe

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

func TestHTTPProtoChoice(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	h1TLS := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})) // no h2
	defer h1TLS.Close()
	h2TLS := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h2TLS.EnableHTTP2 = true
	h2TLS.StartTLS()
	defer h2TLS.Close()
	h2c := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetHTTP1(true)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	defer h2c.Close()
	noALPN := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	noALPN.TLS = &tls.Config{NextProtos: []string{}} // the client's h2 goes unanswered: HTTP/1.1
	noALPN.StartTLS()
	defer noALPN.Close()
	for _, tc := range []struct {
		srv         *httptest.Server
		proto       string
		class, want string
	}{
		{plain, "", "", "HTTP/1.1"},
		{plain, "h1", "", "HTTP/1.1"},
		{h2TLS, "auto", "", "HTTP/2.0"},
		{h2TLS, "h1", "", "HTTP/1.1"},
		{h2TLS, "h2", "", "HTTP/2.0"},
		{h1TLS, "h2", result.ErrTLSHandshake, ""},  // ALPN finds no protocol in common
		{noALPN, "h2", result.ErrHTTP, "HTTP/1.1"}, // said as it is, and failed
		{noALPN, "auto", "", "HTTP/1.1"},
		{h2c, "h2", "", "HTTP/2.0"}, // prior knowledge
		{plain, "h2", result.ErrHTTP, ""},
	} {
		res := runHTTP(t, &Check{Target: tc.srv.URL, HTTP: HTTPOptions{Proto: tc.proto, InsecureSkipVerify: true}})
		if res.Error != tc.class || res.HTTP.Proto != tc.want {
			t.Errorf("%s with proto %q: got error %q (%s) proto %q, want %q %q",
				tc.srv.URL, tc.proto, res.Error, res.ErrorMessage, res.HTTP.Proto, tc.class, tc.want)
		}
	}
}

func TestHTTPProtoOptions(t *testing.T) {
	for _, tc := range []struct {
		target string
		o      HTTPOptions
		want   string
	}{
		{"http://example.com/", HTTPOptions{Proto: "h3"}, "HTTP/3 runs over QUIC"},
		{"https://example.com/", HTTPOptions{Proto: "spdy"}, `unknown proto "spdy"`},
		{"https://example.com/", HTTPOptions{ThroughputMinBytes: -1}, "throughput_min_bytes -1 is negative"},
	} {
		c := &Check{Name: "bad", Kind: result.KindHTTP, Target: tc.target, Interval: time.Minute, HTTP: tc.o}
		_, err := HTTP(t.Context(), c)
		verr := c.Validate(nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || verr == nil || !strings.Contains(verr.Error(), tc.want) {
			t.Errorf("%s %+v: got probe error %v, validation %v, want both to say %q", tc.target, tc.o, err, verr, tc.want)
		}
	}
}

// A body sent at a throttled rate: throughput_bps is what the server
// really sent over the time it spent sending, whatever the set-up and
// think time before the first byte.
func TestHTTPThroughput(t *testing.T) {
	const chunk, chunks = 16 << 10, 24
	var mu sync.Mutex
	var spent time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(httpDelay) // think time: not part of the rate
		buf := make([]byte, chunk)
		var start time.Time
		for i := range chunks {
			if i > 0 {
				time.Sleep(10 * time.Millisecond)
			}
			w.Write(buf)
			w.(http.Flusher).Flush()
			if i == 0 {
				start = time.Now()
			}
		}
		mu.Lock()
		spent = time.Since(start)
		mu.Unlock()
	}))
	defer srv.Close()
	res := runHTTP(t, &Check{Target: srv.URL})
	wantHTTPClass(t, res, "")
	mu.Lock()
	// The server's rate: the chunks after the first, over the time from
	// the first to the last, as the probe counts.
	want := float64((chunks-1)*chunk*8) / spent.Seconds()
	mu.Unlock()
	got := res.HTTP.ThroughputBps
	if got == nil || *got < want*0.75 || *got > want*1.25 {
		t.Fatalf("got throughput_bps %v, want within 25%% of the %.0f the server sent at", got, want)
	}
	t.Logf("throughput %.0f bit/s, server sent at %.0f (%+.1f%%)", *got, want, (*got/want-1)*100)

	// Below the threshold (raised here) there is no rate to report.
	res = runHTTP(t, &Check{Target: srv.URL, HTTP: HTTPOptions{ThroughputMinBytes: chunks*chunk + 1}})
	if res.HTTP.ThroughputBps != nil {
		t.Errorf("got throughput_bps %v for a body under throughput_min_bytes, want none", *res.HTTP.ThroughputBps)
	}
}

func TestHTTPSmallBodyNoThroughput(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("x", 50<<10))
	}))
	defer srv.Close()
	res := runHTTP(t, &Check{Target: srv.URL})
	if res.HTTP.ThroughputBps != nil || *res.HTTP.Bytes != 50<<10 {
		t.Errorf("got throughput_bps %v for %d bytes, want none under the default 100 KiB", res.HTTP.ThroughputBps, *res.HTTP.Bytes)
	}
	res = runHTTP(t, &Check{Target: srv.URL, HTTP: HTTPOptions{ThroughputMinBytes: 10 << 10}})
	if res.HTTP.ThroughputBps == nil || *res.HTTP.ThroughputBps <= 0 {
		t.Errorf("got throughput_bps %v with throughput_min_bytes 10 KiB, want a rate", res.HTTP.ThroughputBps)
	}
}
