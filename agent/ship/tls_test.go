package ship

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meridian-net/meridian/internal/testca"
)

// tlsCollector is a fakeCollector over TLS (HTTP/2 offered) with a
// certificate from ca; it counts the posts that arrived over HTTP/2.
func tlsCollector(t *testing.T, ca *testca.CA, col *fakeCollector) (url string, h2 *atomic.Int64) {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, testca.Leaf{Serial: 1, Hosts: []string{"127.0.0.1"}})
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	h2 = &atomic.Int64{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			h2.Add(1)
		}
		col.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are what some tests want
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, h2
}

func TestShipOverTLS(t *testing.T) {
	ca := testca.New(t, "ship CA")
	col := &fakeCollector{t: t}
	url, h2 := tlsCollector(t, ca, col)
	roots, err := LoadCA(ca.WriteCA(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	q := &sliceQueue{}
	q.Publish(results(3))
	s := New(q, Options{Collector: url, Token: "s3cret", Client: &http.Client{Transport: Transport(roots)},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	flush(t, s)
	if st := s.Stats(); st.Shipped != 3 || h2.Load() != 1 {
		t.Errorf("got %+v, %d posts over HTTP/2; want 3 shipped in 1 HTTP/2 post", st, h2.Load())
	}
}

func TestShipOverTLSUnknownCA(t *testing.T) {
	col := &fakeCollector{t: t}
	url, _ := tlsCollector(t, testca.New(t, "private CA"), col)
	q := &sliceQueue{}
	q.Publish(results(1))
	s := New(q, Options{Collector: url, Token: "s3cret", Client: &http.Client{Transport: Transport(nil)},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	err := s.drain(context.Background(), context.Background())
	if err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Errorf("got %v, want an x509 unknown authority error", err)
	}
	if len(col.posts) != 0 || q.Len() != 1 {
		t.Errorf("got %d posts and %d queued, want none posted and the result kept", len(col.posts), q.Len())
	}
}

func TestLoadCAErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "none.pem")
	for path, want := range map[string]string{
		missing: "cannot read the collector CA: open " + missing + ": no such file or directory (check --ca, MERIDIAN_CA or collector_ca)",
		notPEM:  "cannot use " + notPEM + " as the collector CA: no PEM certificates in it",
	} {
		if _, err := LoadCA(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadCA(%s): got %v, want %q", filepath.Base(path), err, want)
		}
	}
}

func TestPlainRemote(t *testing.T) {
	for url, want := range map[string]bool{
		"http://127.0.0.1:8080":     false,
		"http://127.1.2.3:8080/":    false,
		"http://[::1]:8080":         false,
		"http://localhost:8080":     false,
		"http://LOCALHOST.:8080":    false,
		"https://192.0.2.1":         false,
		"https://collector.example": false,
		"http://192.0.2.1:8080":     true,
		"http://[2001:db8::1]:8080": true,
		"http://collector.example":  true,
		"http://localhost.evil.com": true,
		"http://0.0.0.0:8080":       true,
	} {
		if got := PlainRemote(url); got != want {
			t.Errorf("PlainRemote(%q) = %v, want %v", url, got, want)
		}
	}
}
