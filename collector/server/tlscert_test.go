package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/testca"
)

// tlsServer serves "ok" over TLS with cert and returns its address.
func tlsServer(t *testing.T, cert *Cert) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		TLSConfig:         cert.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// servedSerial GETs https://addr/ with client and returns the serial of the
// certificate on the connection used and whether that connection was reused.
func servedSerial(t *testing.T, client *http.Client, addr string) (serial string, reused bool) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://"+addr+"/", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("got body %q, want ok", b)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.String(), reused
}

func newClient(ca *testca.CA) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
}

// A reload swaps the certificate for new connections, keeps a connection
// made before it working on the old one, and a bad reload keeps the
// certificate served.
func TestCertReload(t *testing.T) {
	ca := testca.New(t, "reload CA")
	dir := t.TempDir()
	certFile, keyFile := ca.WriteLeaf(t, dir, testca.Leaf{Serial: 1, Hosts: []string{"127.0.0.1"}})
	cert, err := LoadCert(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, cert)
	before := newClient(ca)
	if got, _ := servedSerial(t, before, addr); got != "1" {
		t.Fatalf("got serial %s, want 1", got)
	}

	ca.WriteLeaf(t, dir, testca.Leaf{Serial: 2, Hosts: []string{"127.0.0.1"}})
	if err := cert.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got, _ := servedSerial(t, newClient(ca), addr); got != "2" {
		t.Errorf("new connection after reload: got serial %s, want 2", got)
	}
	if got, reused := servedSerial(t, before, addr); got != "1" || !reused {
		t.Errorf("connection from before the reload: got serial %s, reused %v; want 1 on the same connection", got, reused)
	}

	errs := tlsReloadErrors.Get()
	testca.WriteFile(t, certFile, []byte("not a certificate\n"))
	err = cert.Reload()
	if err == nil || !strings.Contains(err.Error(), "cannot use "+certFile+" as the TLS certificate") {
		t.Errorf("reload of a bad file: got %v, want an error naming %s", err, certFile)
	}
	if got := tlsReloadErrors.Get(); got != errs+1 {
		t.Errorf("got meridian_tls_reload_errors_total %d, want %d", got, errs+1)
	}
	if got, _ := servedSerial(t, newClient(ca), addr); got != "2" {
		t.Errorf("after a failed reload: got serial %s, want 2 still", got)
	}
}

func TestCertReloadOn(t *testing.T) {
	ca := testca.New(t, "signal CA")
	dir := t.TempDir()
	cert, err := LoadCert(ca.WriteLeaf(t, dir, testca.Leaf{Serial: 7, Hosts: []string{"x"}}))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal) // unbuffered: a send returns once the previous reload is done
	done := make(chan struct{})
	go func() { cert.ReloadOn(ctx, sig, slog.New(slog.NewTextHandler(&log, nil))); close(done) }()
	ca.WriteLeaf(t, dir, testca.Leaf{Serial: 8, Hosts: []string{"x"}})
	sig <- syscall.SIGHUP
	sig <- syscall.SIGHUP // returns once the first reload is done
	os.Remove(filepath.Join(dir, "key.pem"))
	sig <- syscall.SIGHUP
	sig <- syscall.SIGHUP
	cancel()
	<-done
	if got := cert.Leaf().SerialNumber.String(); got != "8" {
		t.Errorf("got serial %s, want 8", got)
	}
	for _, want := range []string{`msg="reloaded the TLS certificate" serial=8`, `msg="cannot reload the TLS certificate; still serving the previous one`, "key.pem: no such file"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("got log\n%s\nwant %q", &log, want)
		}
	}
}

func TestLoadCertErrors(t *testing.T) {
	ca := testca.New(t, "errors CA")
	dir := t.TempDir()
	certFile, keyFile := ca.WriteLeaf(t, dir, testca.Leaf{Serial: 1, Hosts: []string{"x"}})
	_, otherKey := ca.Issue(t, testca.Leaf{Serial: 2, Hosts: []string{"x"}})
	other := filepath.Join(dir, "other-key.pem")
	testca.WriteFile(t, other, otherKey)
	oldCert, oldKey := ca.Issue(t, testca.Leaf{Serial: 3, Hosts: []string{"x"}, NotAfter: time.Now().Add(-time.Minute)})
	expired, expiredKey := filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	testca.WriteFile(t, expired, oldCert)
	testca.WriteFile(t, expiredKey, oldKey)
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct{ cert, key, want string }{
		{missing, keyFile, "cannot read the TLS certificate: open " + missing + ": no such file or directory (check --tls-cert)"},
		{certFile, missing, "cannot read the TLS key: open " + missing + ": no such file or directory (check --tls-key)"},
		{keyFile, certFile, "cannot use " + keyFile + " as the TLS certificate: no PEM CERTIFICATE block in it"},
		{certFile, other, "cannot use " + other + " as the key of " + certFile + ": tls: private key does not match public key"},
		{expired, expiredKey, "cannot use the TLS certificate " + expired + ": it expired at "},
	} {
		_, err := LoadCert(tc.cert, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadCert(%s, %s): got %v, want %q", filepath.Base(tc.cert), filepath.Base(tc.key), err, tc.want)
		}
	}
}

// A client that offers at most TLS 1.1 is refused.
func TestCertRefusesTLS11(t *testing.T) {
	ca := testca.New(t, "version CA")
	cert, err := LoadCert(ca.WriteLeaf(t, t.TempDir(), testca.Leaf{Serial: 1, Hosts: []string{"127.0.0.1"}}))
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, cert)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded, want it refused")
	}
	var alert tls.AlertError
	if !errors.As(err, &alert) && !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("got %v, want a protocol version alert", err)
	}
}
