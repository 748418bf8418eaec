package faultkit

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream answers 200 with the length of the body it read whole, and
// counts bodies cut short.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  int
	torn int
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		u.mu.Lock()
		defer u.mu.Unlock()
		if err != nil {
			u.torn++
			return
		}
		u.got++
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func post(t *testing.T, url string, body []byte) (int, error) {
	t.Helper()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(body)
	zw.Close()
	req, _ := http.NewRequest("POST", url+"/v1/results", bytes.NewReader(zb.Bytes()))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer tok")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestProxyTapsAndFaults(t *testing.T) {
	up := newUpstream(t)
	// The first upstream refuses connections: the proxy fails over.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	l := NewLedger()
	l.Agent("a1", "tok", "lab")
	p := NewProxy(t, []string{deadAddr, strings.TrimPrefix(up.srv.URL, "http://")}, l.Tap)

	line := `{"v":1,"id":"id-1","agent":"a1","check":"c","kind":"tcp","target":"x:1","ts":"2026-01-02T03:04:05.678Z","ok":true,"total_ms":1.5}` + "\n"
	big := []byte(strings.Repeat(line, 1))
	if code, err := post(t, p.URL(), big); err != nil || code != http.StatusAccepted {
		t.Fatalf("through a healthy proxy: got %d, %v; want 202", code, err)
	}
	waitFor(t, func() bool { return len(l.Posts()) == 1 })
	ps := l.Posts()
	if ps[0].Status != 202 || ps[0].RetryAfter != "7" || ps[0].Who != "a1" || ps[0].N != 1 {
		t.Errorf("tap: got %+v, want a1's post of 1 result answered 202 with Retry-After 7", ps[0])
	}
	it := l.Items(Results)["id-1"]
	if !it.Acked || it.Sum != Sum("a1", "lab", "c", "tcp", "x:1", "1767323045678", "1", "", "1.5") {
		t.Errorf("ledger: got %+v, want id-1 acked with its fingerprint", it)
	}

	p.Set(Faults{ResetAfter: 10})
	if _, err := post(t, p.URL(), big); err == nil {
		t.Errorf("reset mid-body: the post succeeded")
	}
	p.Cut()
	if _, err := post(t, p.URL(), big); err == nil {
		t.Errorf("cut: the post succeeded")
	}
	p.Heal()
	if code, err := post(t, p.URL(), big); err != nil || code != http.StatusAccepted {
		t.Fatalf("healed: got %d, %v; want 202", code, err)
	}
	waitFor(t, func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.got == 2 && up.torn == 1
	})
	waitFor(t, func() bool { return len(l.Posts()) == 3 })
	if ps := l.Posts(); ps[1].Complete || ps[1].Status != 0 {
		t.Errorf("the post reset mid-body: tap says %+v, want incomplete and unanswered", ps[1])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
