package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/syncbuf"
	"github.com/meridian-net/meridian/internal/testca"
)

// waitLog waits until log matches re and returns the first submatch.
func waitLog(t *testing.T, log fmt.Stringer, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := rx.FindStringSubmatch(log.String()); m != nil {
			return m[len(m)-1]
		}
	}
	t.Fatalf("timed out waiting for %q in the log:\n%s", re, log)
	return ""
}

// tlsServe runs `meridian serve` with --tls-cert/--tls-key in-process on a
// free port; it returns the address and the log. The server stops, and its
// error is checked, at the end of the test.
func tlsServe(t *testing.T, o store.Options, certFile, keyFile string) (addr string, log *syncbuf.Buffer) {
	t.Helper()
	log = &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"meridian", "serve", "--listen", "127.0.0.1:0", "--flush-interval", "50ms",
			"--spool-dir", t.TempDir(), "--clickhouse", o.Addr, "--database", o.Database,
			"--tls-cert", certFile, "--tls-key", keyFile}, io.Discard, log)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v\n%s", err, log)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not stop\n%s", log)
		}
	})
	return waitLog(t, log, `msg="collector listening" addr=https://(\S+)`), log
}

func tlsClient(ca *testca.CA) *http.Client {
	return &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
}

// get GETs path and returns the body, the serial of the certificate on the
// connection, and whether that connection was reused.
func get(t *testing.T, client *http.Client, addr, path string) (body, serial string, reused bool) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://"+addr+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("GET %s: got %s over %s, want 200 over HTTP/2", path, resp.Status, resp.Proto)
	}
	return string(b), resp.TLS.PeerCertificates[0].SerialNumber.String(), reused
}

// SIGHUP makes a running `meridian serve` reread its certificate: new
// connections get the new one, a keep-alive connection from before goes on
// working, a bad file keeps the old certificate (logged and counted), and
// TLS 1.1 is refused throughout.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	o, _ := chtest.New(t)
	ca := testca.New(t, "serve CA")
	dir := t.TempDir()
	certFile, keyFile := ca.WriteLeaf(t, dir, testca.Leaf{Serial: 101, Hosts: []string{"127.0.0.1"}})
	addr, log := tlsServe(t, o, certFile, keyFile)
	old := tlsClient(ca)
	metricsBefore, serial, _ := get(t, old, addr, "/metrics")
	if serial != "101" {
		t.Fatalf("got serial %s, want 101", serial)
	}

	ca.WriteLeaf(t, dir, testca.Leaf{Serial: 102, Hosts: []string{"127.0.0.1"}})
	hup(t)
	waitLog(t, log, `msg="reloaded the TLS certificate" serial=(102)`)
	if _, serial, _ := get(t, tlsClient(ca), addr, "/healthz"); serial != "102" {
		t.Errorf("new connection after SIGHUP: got serial %s, want 102", serial)
	}
	if _, serial, reused := get(t, old, addr, "/healthz"); serial != "101" || !reused {
		t.Errorf("keep-alive connection from before SIGHUP: got serial %s, reused %v; want 101 on the same connection", serial, reused)
	}

	testca.WriteFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	hup(t)
	waitLog(t, log, `level=ERROR msg="(cannot reload the TLS certificate); still serving the previous one`)
	if !strings.Contains(log.String(), "cannot use "+certFile+" as the TLS certificate") {
		t.Errorf("the failed reload's log does not name %s:\n%s", certFile, log)
	}
	metrics, serial, _ := get(t, tlsClient(ca), addr, "/metrics")
	if serial != "102" {
		t.Errorf("after a failed reload: got serial %s, want 102 still", serial)
	}
	for _, name := range []string{"meridian_tls_reload_errors_total", "meridian_tls_reloads_total"} {
		if before, after := metricValue(metricsBefore, name), metricValue(metrics, name); after != before+1 {
			t.Errorf("got %s %v, want %v (one more than before)", name, after, before+1)
		}
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded, want it refused")
	} else if !strings.Contains(err.Error(), "protocol version not supported") {
		t.Errorf("TLS 1.1: got %v, want a protocol version alert", err)
	}
}

// metricValue reads one series' value from a /metrics page (-1 when absent).
func metricValue(page, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// hup sends SIGHUP to this process, where serve is listening for it.
func hup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

func TestServeTLSUsage(t *testing.T) {
	ca := testca.New(t, "usage CA")
	dir := t.TempDir()
	certFile, keyFile := ca.WriteLeaf(t, dir, testca.Leaf{Serial: 1, Hosts: []string{"127.0.0.1"}})
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		args []string
		env  string
		code int
		want string
	}{
		{[]string{"--tls-cert", certFile}, "", 2, "--tls-cert needs --tls-key FILE (or MERIDIAN_TLS_KEY)"},
		{[]string{"--tls-key", keyFile}, "", 2, "--tls-key needs --tls-cert FILE (or MERIDIAN_TLS_CERT)"},
		{nil, certFile, 2, "--tls-cert needs --tls-key FILE"},
		{[]string{"--tls-cert", missing, "--tls-key", keyFile}, "", 1, "cannot read the TLS certificate: open " + missing + ": no such file or directory (check --tls-cert)"},
		{[]string{"--tls-cert", keyFile, "--tls-key", certFile}, "", 1, "cannot use " + keyFile + " as the TLS certificate: no PEM CERTIFICATE block in it"},
	} {
		t.Setenv("MERIDIAN_TLS_CERT", tc.env)
		// Nothing listens on port 1: the TLS files are checked before ClickHouse is reached.
		out, code := meridian(t, store.Options{Addr: "127.0.0.1:1", Database: "none"}, append([]string{"serve"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("serve %v (MERIDIAN_TLS_CERT=%q): got exit %d, %q; want exit %d and %q", tc.args, tc.env, code, out, tc.code, tc.want)
		}
	}
}

// The agent binary, given the collector's private CA, ships over TLS (the
// results land in ClickHouse); without it every post fails verification
// with an x509 error in its log, and nothing lands.
func TestAgentToTLSCollector(t *testing.T) {
	o, conn := chtest.New(t)
	bin := buildAgent(t)
	ca := testca.New(t, "agent CA")
	dir := t.TempDir()
	certFile, keyFile := ca.WriteLeaf(t, dir, testca.Leaf{Serial: 5, Hosts: []string{"127.0.0.1"}})
	addr, _ := tlsServe(t, o, certFile, keyFile)
	token := lastLine(mustRun(t, o, "agents", "add", "tls-1", "--region", "test"))
	count := func(check string) uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM results WHERE check_name = ?", check).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	withCA := startAgent(t, bin, token, addr, "with-ca", "--ca", ca.WriteCA(t, dir))
	for deadline := time.Now().Add(20 * time.Second); count("with-ca") == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no results in ClickHouse from the agent given --ca\nagent log:\n%s", withCA)
		}
	}
	if strings.Contains(withCA.String(), "x509") {
		t.Errorf("agent given --ca logged an x509 error:\n%s", withCA)
	}

	noCA := startAgent(t, bin, token, addr, "no-ca")
	waitLog(t, noCA, `msg="cannot ship results; will retry" err="cannot post \d+ results: Post \\"https://[^"]+\\": (tls: failed to verify certificate: x509: certificate signed by unknown authority)"`)
	if n := count("no-ca"); n != 0 {
		t.Errorf("got %d results from the agent without --ca, want 0", n)
	}
}

// buildAgent builds meridian-agent into a temporary directory.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meridian-agent")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/meridian-net/meridian/agent/cmd/meridian-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build meridian-agent: %v\n%s", err, out)
	}
	return bin
}

// startAgent runs the agent binary against https://addr with one tcp check
// named check (on the collector's own port) and returns its log.
func startAgent(t *testing.T, bin, token, addr, check string, args ...string) *syncbuf.Buffer {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yml")
	body := fmt.Sprintf("agent: {name: tls-1}\nship: {interval: 100ms}\nchecks:\n  - {name: %s, kind: tcp, target: %q, interval: 1s}\n", check, addr)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &syncbuf.Buffer{}
	cmd := exec.Command(bin, append([]string{"run", "--config", cfg, "--collector", "https://" + addr,
		"--data-dir", filepath.Join(dir, "data"), "--config-poll", "1s"}, args...)...)
	cmd.Env = append(os.Environ(), "MERIDIAN_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return log
}
