package store_test

import (
	"context"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

// A traceroute is stored as parallel hop_* arrays lined up with its hops,
// -1 where a hop has no times, with the collector's ASN lookups; other
// kinds store empty arrays. The http fields of 0060/0061 land as sent.
func TestWriterStoresTraceroute(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now().UTC()
	tr := result.New("gru-1", "path", result.KindTraceroute, "10.9.4.2", now)
	tr.OK = true
	tr.Traceroute = &result.Traceroute{Proto: "tcp", Port: 443, Reached: true, Hops: []result.TraceHop{
		{TTL: 1, Addr: "10.9.1.1", Name: "r1.test", Sent: 3, Received: 3, MinMs: f(0.1), AvgMs: f(0.2), MaxMs: f(0.3), StddevMs: f(0.05)},
		{TTL: 2, Sent: 3, LossPct: 100},
		{TTL: 3, Addr: "10.9.4.2", Sent: 3, Received: 2, LossPct: 33.3, MinMs: f(1), AvgMs: f(1.5), MaxMs: f(2), StddevMs: f(0.5)},
	}}
	page := result.New("gru-1", "big", result.KindHTTP, "https://example.com/big", now)
	page.OK, page.HTTP = true, &result.HTTP{Status: 200, ThroughputBps: f(8e8), AltSvc: `h3=":443"; ma=86400`}
	rows := []store.Row{
		{Result: *tr, Region: "sa", HopASN: []uint32{64500, 0, 64501}, HopOrg: []string{"First", "", "Second"}},
		{Result: *page, Region: "sa"},
	}
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	w.Close()

	var (
		proto           string
		port            uint16
		reached         uint8
		ttl             []uint8
		addr, name, org []string
		asn             []uint32
		sent, recv      []uint16
		loss, mn, av    []float64
		mx, sd          []float64
	)
	err = conn.QueryRow(ctx, `SELECT trace_proto, trace_port, trace_reached, hop_ttl, hop_addr, hop_name, hop_asn, hop_org,
		hop_sent, hop_received, hop_loss_pct, hop_min_ms, hop_avg_ms, hop_max_ms, hop_stddev_ms FROM results WHERE id = ?`, tr.ID).
		Scan(&proto, &port, &reached, &ttl, &addr, &name, &asn, &org, &sent, &recv, &loss, &mn, &av, &mx, &sd)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"trace_proto", proto, "tcp"}, {"trace_port", port, uint16(443)}, {"trace_reached", reached, uint8(1)},
		{"hop_ttl", ttl, []uint8{1, 2, 3}},
		{"hop_addr", addr, []string{"10.9.1.1", "", "10.9.4.2"}},
		{"hop_name", name, []string{"r1.test", "", ""}},
		{"hop_asn", asn, []uint32{64500, 0, 64501}},
		{"hop_org", org, []string{"First", "", "Second"}},
		{"hop_sent", sent, []uint16{3, 3, 3}},
		{"hop_received", recv, []uint16{3, 0, 2}},
		{"hop_loss_pct", loss, []float64{0, 100, 33.3}},
		{"hop_min_ms", mn, []float64{0.1, -1, 1}},
		{"hop_avg_ms", av, []float64{0.2, -1, 1.5}},
		{"hop_max_ms", mx, []float64{0.3, -1, 2}},
		{"hop_stddev_ms", sd, []float64{0.05, -1, 0.5}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var (
		bps    *float64
		altSvc string
		hops   uint64
	)
	err = conn.QueryRow(ctx, "SELECT throughput_bps, alt_svc, length(hop_ttl) + length(hop_asn) FROM results WHERE id = ?", page.ID).Scan(&bps, &altSvc, &hops)
	if err != nil {
		t.Fatal(err)
	}
	if bps == nil || *bps != 8e8 || altSvc != `h3=":443"; ma=86400` || hops != 0 {
		t.Errorf("http row: got throughput_bps=%v alt_svc=%q hop elements=%d, want 8e8, the header, 0", bps, altSvc, hops)
	}
}

// The ALTERs of 0060-0076, run on a results table as it was before them,
// give the very columns (names, types, order) a fresh CREATE (0002) gives:
// a replica created later must match the ones that were altered.
func TestResultsAlteredMatchesFresh(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	fresh, old := o.Database+".results ", o.Database+".results_old "
	var create string
	var alters []string
	for _, m := range ms {
		stmts, err := m.Statements(o)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case m.Version == 2:
			create = stmts[0]
		case m.Version >= 60 && m.Version <= 76:
			alters = append(alters, strings.Replace(stmts[0], fresh, old, 1))
		}
	}
	before := regexp.MustCompile(`(?s)(replay\s+UInt8 DEFAULT 0),.*?\n\) ENGINE`).ReplaceAllString(create, "$1\n) ENGINE")
	before = strings.Replace(before, fresh, old, 1)
	if before == create || len(alters) != 17 {
		t.Fatalf("cannot cut the pre-0060 table out of 0002 (or got %d ALTERs, want 17)", len(alters))
	}
	for _, s := range append([]string{before}, alters...) {
		if err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
	if got, want := columnsOf(t, conn, o.Database, "results_old"), columnsOf(t, conn, o.Database, "results"); !reflect.DeepEqual(got, want) {
		t.Errorf("altered table's columns differ from a fresh one's:\n got %v\nwant %v", got, want)
	}
}

// columnsOf lists a table's columns as "name type", in table order.
func columnsOf(t *testing.T, conn driver.Conn, db, table string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		out = append(out, name+" "+typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
