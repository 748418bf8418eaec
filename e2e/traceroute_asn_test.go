package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/netnstest"
	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestTracerouteASNsInClickHouse runs an agent inside the source namespace
// of a three-router path (agent/probe/netnstest), shipping to a collector
// outside it over a veth uplink. Its traceroute result lands in ClickHouse
// with each hop's ASN and organisation from the collector's ASN database:
// the agent sends addresses only.
func TestTracerouteASNsInClickHouse(t *testing.T) {
	collector, agent := binaries(t)
	p := netnstest.NewPath(t, [3]netnstest.Router{})
	host := p.Uplink(t)
	o, conn := chtest.New(t)
	token, err := store.AddAgent(context.Background(), conn, "path-1", "lab")
	if err != nil {
		t.Fatal(err)
	}
	asnDB := enrichtest.ASNDB(t, map[string]enrichtest.ASN{
		"10.201.1.0/24": {Number: 64501, Org: "First Hop Net"},
		"10.201.2.0/24": {Number: 64502, Org: "Middle Transit"},
		"10.201.3.0/24": {Number: 64503, Org: "Far Carrier"},
		"10.201.4.0/24": {Number: 64504, Org: "Destination Hosting"},
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(host.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	start(t, "collector", []string{"MERIDIAN_CLICKHOUSE=" + o.Addr, "MERIDIAN_DATABASE=" + o.Database},
		collector, "serve", "--listen", listen, "--flush-interval", "50ms", "--asn-db", asnDB,
		"--spool-dir", filepath.Join(t.TempDir(), "spool"))
	waitHTTP(t, "http://"+listen+"/readyz")

	config := filepath.Join(t.TempDir(), "agent.yml")
	os.WriteFile(config, []byte(`agent: {name: path-1, region: lab}
ship: {interval: 200ms}
checks:
  - name: path
    kind: traceroute
    target: 10.201.4.2
    interval: 2s
    traceroute: {protocol: udp, max_hops: 8, probe_timeout: 300ms}
`), 0o644)
	start(t, "agent", []string{"MERIDIAN_TOKEN=" + token, "MERIDIAN_COLLECTOR=http://" + listen},
		"ip", "netns", "exec", p.Src, agent, "run", "--insecure-collector", "--config", config, "--data-dir", filepath.Join(t.TempDir(), "data"))

	var (
		addrs, orgs []string
		asns        []uint32
	)
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := conn.QueryRow(context.Background(), `SELECT hop_addr, hop_asn, hop_org FROM results FINAL
			WHERE kind = 'traceroute' AND ok = 1 AND trace_reached = 1 AND trace_proto = 'udp' LIMIT 1`).Scan(&addrs, &asns, &orgs)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			var errs string
			conn.QueryRow(context.Background(), "SELECT groupUniqArray(concat(error, ': ', error_message)) FROM results").Scan(&errs)
			t.Fatalf("no traceroute result in ClickHouse within 60s (%v); errors seen: %v", err, errs)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"hop_addr", addrs, p.Hops},
		{"hop_asn", asns, []uint32{64501, 64502, 64503, 64504}},
		{"hop_org", orgs, []string{"First Hop Net", "Middle Transit", "Far Carrier", "Destination Hosting"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
