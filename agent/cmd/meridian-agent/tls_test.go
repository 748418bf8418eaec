package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/syncbuf"
	"github.com/meridian-net/meridian/internal/testca"
)

// tlsCollector is a fakeCollector behind HTTPS with a certificate from ca;
// paths counts the requests that got through the handshake, by path.
type tlsCollector struct {
	*fakeCollector
	URL string

	mu    sync.Mutex
	paths map[string]int
}

func newTLSCollector(t *testing.T, ca *testca.CA) *tlsCollector {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, testca.Leaf{Serial: 1, Hosts: []string{"127.0.0.1"}})
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := &tlsCollector{fakeCollector: &fakeCollector{t: t, ids: map[string]int{}}, paths: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.paths[r.URL.Path]++
		c.mu.Unlock()
		c.fakeCollector.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are what some tests want
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *tlsCollector) seen(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[path]
}

// runAgent runs `meridian-agent run` in-process until stop is called, which
// returns run's error.
func runAgent(t *testing.T, args ...string) (log *syncbuf.Buffer, stop func() error) {
	t.Helper()
	log = &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"meridian-agent", "run", "--data-dir", filepath.Join(t.TempDir(), "data"),
			"--config-poll", "50ms"}, args...), io.Discard, log)
	}()
	stopped := false
	stop = func() error {
		t.Helper()
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("run did not stop after cancel\n%s", log)
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return log, stop
}

// With the collector's private CA given (flag, env or config file), results,
// remote config polls and heartbeats all reach the collector over TLS.
func TestRunTLSCollectorWithCA(t *testing.T) {
	t.Setenv("MERIDIAN_TOKEN", testToken)
	ca := testca.New(t, "agent test CA")
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir)
	check := func(col *tlsCollector) string {
		return fmt.Sprintf("{name: c, kind: tcp, target: %q, interval: 1s}", strings.TrimPrefix(col.URL, "https://"))
	}
	for _, how := range []string{"flag", "env", "config"} {
		t.Run(how, func(t *testing.T) {
			col := newTLSCollector(t, ca)
			cfg := writeConfig(t, t.TempDir(), "tls-"+how, check(col))
			args := []string{"--config", cfg, "--collector", col.URL}
			switch how {
			case "flag":
				args = append(args, "--ca", caFile)
			case "env":
				t.Setenv("MERIDIAN_CA", caFile)
			case "config":
				b, _ := os.ReadFile(cfg)
				os.WriteFile(cfg, append([]byte("collector_ca: "+caFile+"\n"), b...), 0o600)
			}
			log, stop := runAgent(t, args...)
			waitFor(t, 10*time.Second, "results, a config poll and a heartbeat over TLS", func() bool {
				ids, _ := col.received()
				return len(ids) > 0 && col.seen(configPath) > 0 && col.seen(heartbeatPath) > 0
			}, log)
			if err := stop(); err != nil {
				t.Fatalf("run: %v\n%s", err, log)
			}
			if strings.Contains(log.String(), "x509") {
				t.Errorf("got x509 errors in the log:\n%s", log)
			}
		})
	}
}

// Without the CA, the system roots do not know the collector's certificate:
// every request fails with an x509 error the log shows, and nothing arrives.
func TestRunTLSCollectorWithoutCA(t *testing.T) {
	t.Setenv("MERIDIAN_TOKEN", testToken)
	col := newTLSCollector(t, testca.New(t, "unknown CA"))
	cfg := writeConfig(t, t.TempDir(), "tls-no-ca",
		fmt.Sprintf("{name: c, kind: tcp, target: %q, interval: 1s}", strings.TrimPrefix(col.URL, "https://")))
	log, stop := runAgent(t, "--config", cfg, "--collector", col.URL)
	const x509Err = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
	waitFor(t, 10*time.Second, "shipping and polling to fail verification", func() bool {
		s := log.String()
		return strings.Contains(s, `msg="cannot ship results; will retry"`) && strings.Contains(s, `msg="cannot poll the remote config`) &&
			strings.Count(s, x509Err) >= 2
	}, log)
	stop()
	if ids, _ := col.received(); len(ids) != 0 || col.seen(configPath) != 0 {
		t.Errorf("got %d results and %d config polls through an unverified connection, want none", len(ids), col.seen(configPath))
	}
}

// Plain http to another host is refused at startup unless
// --insecure-collector; loopback http and https are fine.
func TestRunPlainHTTPCollector(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "plain", `{name: c, kind: tcp, target: "127.0.0.1:1", interval: 1s}`)
	stopped, cancel := context.WithCancel(context.Background())
	cancel() // the agent starts, then stops at once
	missing := filepath.Join(t.TempDir(), "none.pem")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--collector", "http://192.0.2.1:8080"}, 2,
			"cannot send the token and results to http://192.0.2.1:8080 in clear text: use an https:// collector (meridian serve --tls-cert/--tls-key; --ca FILE here for a private CA), or pass --insecure-collector to accept plain http"},
		{[]string{"--collector", "http://collector.example"}, 2, "pass --insecure-collector"},
		{[]string{"--collector", "http://192.0.2.1:8080", "--insecure-collector"}, 0, "meridian-agent started"},
		{[]string{"--collector", "http://localhost:1"}, 0, "meridian-agent started"},
		{[]string{"--collector", "http://[::1]:1"}, 0, "meridian-agent started"},
		{[]string{"--collector", "https://127.0.0.1:1", "--ca", missing}, 2, "cannot read the collector CA: open " + missing},
	} {
		args := append([]string{"run", "--config", cfg, "--data-dir", filepath.Join(t.TempDir(), "data")}, tc.args...)
		_, errs, code := runCLI(t, stopped, args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: got exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}
