package e2e

import (
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestEveryKindLandsInClickHouse runs one agent with a check of every kind
// against local servers and asserts each kind's own fields reach their
// ClickHouse columns through the collector.
func TestEveryKindLandsInClickHouse(t *testing.T) {
	collector, agent := binaries(t)
	o, conn := chtest.New(t)
	token, err := store.AddAgent(context.Background(), conn, "kinds-1", "lab")
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	start(t, "collector", []string{"MERIDIAN_CLICKHOUSE=" + o.Addr, "MERIDIAN_DATABASE=" + o.Database},
		collector, "serve", "--listen", listen, "--flush-interval", "50ms", "--spool-dir", filepath.Join(t.TempDir(), "spool"))
	waitHTTP(t, "http://"+listen+"/readyz")

	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>kinds</title><h1>Hello</h1><p>a page for the browser probe</p>`)
	}))
	defer page.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer tlsSrv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644)
	resolver := dnsServer(t, "kinds.test. 60 IN A 127.0.0.1")

	config := filepath.Join(t.TempDir(), "agent.yml")
	pageHost := strings.TrimPrefix(page.URL, "http://")
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")
	os.WriteFile(config, []byte(fmt.Sprintf(`agent: {name: kinds-1, region: lab}
ship: {interval: 200ms}
checks:
  - {name: web, kind: http, target: %q, interval: 2s}
  - {name: resolve, kind: dns, target: kinds.test, interval: 2s, dns: {resolvers: [%q]}}
  - {name: port, kind: tcp, target: %q, interval: 2s}
  - {name: cert, kind: tls, target: %q, interval: 2s, tls: {trust_stores: {lab: %q}}}
  - {name: ping, kind: icmp, target: 127.0.0.1, interval: 2s, icmp: {count: 2}}
  - {name: page, kind: browser, target: %q, interval: 5s, timeout: 4s}
`, page.URL+"/", resolver, pageHost, tlsHost, caFile, page.URL+"/")), 0o644)
	start(t, "agent", []string{"MERIDIAN_TOKEN=" + token, "MERIDIAN_COLLECTOR=http://" + listen},
		agent, "run", "--config", config, "--data-dir", filepath.Join(t.TempDir(), "data"))

	// One query per kind: a row that is ok and has the kind's own fields.
	want := map[string]string{
		"http":    "kind = 'http' AND ok = 1 AND http_status = 200 AND isNotNull(ttfb_ms) AND isNull(dns_ms)",
		"dns":     "kind = 'dns' AND ok = 1 AND rcode = 'NOERROR' AND length(answers) = 1 AND isNotNull(dns_ms)",
		"tcp":     "kind = 'tcp' AND ok = 1 AND isNotNull(connect_ms) AND remote_ip = '127.0.0.1'",
		"tls":     "kind = 'tls' AND ok = 1 AND tls_version != '' AND cert_sha256 != '' AND has(trust_store, 'lab') AND isNotNull(tls_ms)",
		"icmp":    "kind = 'icmp' AND ok = 1 AND ping_sent = 2 AND ping_received = 2 AND isNotNull(ping_avg_ms)",
		"browser": "kind = 'browser' AND ok = 1 AND isNotNull(fcp_ms) AND resources >= 1 AND isNotNull(load_ms) AND length(bh_host) >= 1",
	}
	deadline := time.Now().Add(60 * time.Second)
	for kind, cond := range want {
		for {
			var n uint64
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM results FINAL WHERE "+cond).Scan(&n); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				var errs string
				conn.QueryRow(context.Background(), "SELECT groupUniqArray(concat(error, ': ', error_message)) FROM results WHERE kind = ?", kind).Scan(&errs)
				t.Fatalf("no %s result with its fields in ClickHouse within 60s (%s); errors seen: %v", kind, cond, errs)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// dnsServer answers from records on a loopback UDP port and returns it.
func dnsServer(t *testing.T, records ...string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		for _, rr := range rrs {
			if strings.EqualFold(rr.Header().Name, req.Question[0].Name) && rr.Header().Rrtype == req.Question[0].Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}
