package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

func i64(v int64) *int64 { return &v }
func yes() *bool         { b := true; return &b }

func fullBeacon(pv string) store.BeaconRow {
	dt := ""
	return store.BeaconRow{
		Beacon: store.Beacon{
			V: 1, Site: "mrs_x", PV: pv, URL: "https://shop.example/p", RefHost: "www.search.example", Sample: 0.5,
			Nav: &store.BeaconNav{Type: "navigate", DNSMs: f(0), ConnectMs: f(12.1), TTFBMs: f(70.1), LoadMs: f(510.4),
				Protocol: "h2", TransferBytes: i64(12345), DeliveryType: &dt},
			Vitals:       &store.BeaconVitals{FCPMs: f(44), LCPMs: f(200), INPMs: f(160), CLS: f(0.0831)},
			Conn:         &store.BeaconConn{EffectiveType: "4g", RTTMs: f(100)},
			ServerTiming: []store.ServerTiming{{Name: "app", Dur: f(12.5), Desc: "render"}, {Name: "cdn-cache", Desc: "MISS"}},
			Hosts: []store.BeaconHost{
				{Host: "img.cdn1.example", CDN: "cdn1", Count: 2, MedianMs: f(50), Bytes: i64(10000), TAO: yes()},
			},
			CDNProbes: []store.CDNProbe{
				{CDN: "cdn1", URL: "https://p.cdn1.example/probe.gif",
					Cold: &store.ProbeFetch{DNSMs: f(5), DurationMs: f(30), Bytes: i64(400)},
					Warm: &store.ProbeFetch{DNSMs: f(0), DurationMs: f(12.5)}},
				{CDN: "cdn2", URL: "https://p.cdn2.example/probe.gif", Cold: &store.ProbeFetch{Error: true, Status: 503}},
			},
		},
		Visitor:    store.Visitor{Country: "DE", Region: "BE", City: "Berlin", ASN: 64500, ASOrg: "Example Net", Browser: "Chrome", BrowserVersion: "126", OS: "Windows", Device: "desktop"},
		ReceivedAt: time.Now(),
	}
}

func TestBeaconWriterStoresAndDedupes(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	w, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	full := fullBeacon("2868f94a-3818-45f6-bd22-b331b62b2949")
	bare := store.BeaconRow{Beacon: store.Beacon{V: 1, Site: "mrs_x", PV: "00000000-0000-4000-8000-000000000000", URL: "https://shop.example/", Sample: 1, Webdriver: true},
		Visitor: store.Visitor{Bot: true, Device: "bot"}, ReceivedAt: time.Now()}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ { // the same beacons twice, concurrently: one batch or two, one row each
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Write(ctx, []store.BeaconRow{full, bare}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	var n uint64
	conn.QueryRow(ctx, "SELECT count() FROM rum_pageviews FINAL").Scan(&n)
	if n != 2 {
		t.Errorf("got %d page views after a replay, want 2", n)
	}
	var (
		country, browser string
		asn              uint32
		lcp, dns, load   *float64
		tls, redirect    *float64
		stNames          []string
		stHas            []uint8
	)
	err = conn.QueryRow(ctx, `SELECT country, browser, asn, lcp_ms, dns_ms, load_ms, tls_ms, redirect_ms, server_timing_name, server_timing_has_dur
		FROM rum_pageviews FINAL WHERE pv = ?`, full.PV).Scan(&country, &browser, &asn, &lcp, &dns, &load, &tls, &redirect, &stNames, &stHas)
	if err != nil {
		t.Fatal(err)
	}
	if country != "DE" || browser != "Chrome" || asn != 64500 || lcp == nil || *lcp != 200 || dns == nil || *dns != 0 ||
		load == nil || *load != 510.4 || tls != nil || redirect != nil || len(stNames) != 2 || stHas[0] != 1 || stHas[1] != 0 {
		t.Errorf("got country %q browser %q asn %d lcp %v dns %v load %v tls %v redirect %v st %v %v",
			country, browser, asn, lcp, dns, load, tls, redirect, stNames, stHas)
	}
	var bareLCP *float64
	var bot uint8
	conn.QueryRow(ctx, "SELECT lcp_ms, is_bot FROM rum_pageviews FINAL WHERE pv = ?", bare.PV).Scan(&bareLCP, &bot)
	if bareLCP != nil || bot != 1 {
		t.Errorf("bare beacon: got lcp %v is_bot %d, want NULL and 1", bareLCP, bot)
	}

	rows, err := conn.Query(ctx, "SELECT kind, cdn, host, count, duration_ms, dns_ms, tao, error, status FROM rum_cdn FINAL ORDER BY kind, cdn")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type cdnRow struct {
		kind, cdn, host string
		count           uint32
		dur, dns        *float64
		tao             *uint8
		errored         uint8
		status          uint16
	}
	var got []cdnRow
	for rows.Next() {
		var r cdnRow
		if err := rows.Scan(&r.kind, &r.cdn, &r.host, &r.count, &r.dur, &r.dns, &r.tao, &r.errored, &r.status); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 4 {
		t.Fatalf("got %d rum_cdn rows after a replay, want 4 (host, cold, warm, failed cold): %+v", len(got), got)
	}
	if h := got[0]; h.kind != "host" || h.cdn != "cdn1" || h.count != 2 || *h.dur != 50 || *h.tao != 1 || h.dns != nil {
		t.Errorf("host row: got %+v", h)
	}
	if c := got[1]; c.kind != "probe_cold" || c.cdn != "cdn1" || c.host != "p.cdn1.example" || *c.dur != 30 || *c.dns != 5 || c.tao != nil {
		t.Errorf("cold probe row: got %+v", c)
	}
	if e := got[2]; e.kind != "probe_cold" || e.cdn != "cdn2" || e.errored != 1 || e.status != 503 || e.dur != nil {
		t.Errorf("failed probe row: got %+v", e)
	}
	if wm := got[3]; wm.kind != "probe_warm" || *wm.dur != 12.5 || *wm.dns != 0 {
		t.Errorf("warm probe row: got %+v", wm)
	}
}

// While ClickHouse cannot take inserts, beacons are acknowledged from the
// disk spool and land once it can: the same path as results.
func TestBeaconWriterSpoolsWhileClickHouseIsAway(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	w, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: dir, DrainEvery: 20 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := conn.Exec(ctx, "RENAME TABLE rum_pageviews TO rum_pageviews_away"); err != nil {
		t.Fatal(err)
	}
	rows := make([]store.BeaconRow, 20)
	for i := range rows {
		rows[i] = store.BeaconRow{
			Beacon:     store.Beacon{V: 1, Site: "mrs_x", PV: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), URL: "https://shop.example/", Sample: 1},
			Visitor:    store.Visitor{Country: "DE", Browser: "Firefox"},
			ReceivedAt: time.Now(),
		}
	}
	if err := w.Write(ctx, rows); err != nil {
		t.Fatalf("write while ClickHouse is away: got %v, want it spooled and acknowledged", err)
	}
	if err := conn.Exec(ctx, "RENAME TABLE rum_pageviews_away TO rum_pageviews"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var n uint64
	var country string
	for time.Now().Before(deadline) {
		conn.QueryRow(ctx, "SELECT count(), any(country) FROM rum_pageviews FINAL").Scan(&n, &country)
		if files, _ := filepath.Glob(filepath.Join(dir, "seg-*")); n == 20 && len(files) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n != 20 || country != "DE" {
		t.Errorf("after ClickHouse came back: got %d page views (country %q), want 20 (DE)", n, country)
	}
}

// An insert larger than one block goes to ClickHouse block by block
// within one INSERT: every row keeps its own values, and ClickHouse makes
// one part of it (its cost is per insert), as the part's name shows:
// <partition>_<first block>_<last block>_<merge level>.
func TestBeaconInsertInBlocksIsOnePart(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	w, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: time.Hour, MaxRows: 4500, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]store.BeaconRow, 4500) // more than four blocks
	for i := range rows {
		rows[i] = fullBeacon(fmt.Sprintf("pv-%04d", i))
		rows[i].Nav.LoadMs = f(float64(i))
	}
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	w.Close() // inserts the full batch at once
	var n, mixed uint64
	if err := conn.QueryRow(ctx, "SELECT count(), countIf(toUInt32(substring(pv, 4)) != toUInt32(load_ms)) FROM rum_pageviews").Scan(&n, &mixed); err != nil {
		t.Fatal(err)
	}
	if n != 4500 || mixed != 0 {
		t.Errorf("got %d page views, %d of them with another row's load_ms: want 4500, none", n, mixed)
	}
	for _, table := range []string{"rum_pageviews", "rum_cdn"} {
		var parts []string
		rs, err := conn.Query(ctx, "SELECT name FROM system.parts WHERE database = currentDatabase() AND table = ? AND active", table)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var name string
			rs.Scan(&name)
			parts = append(parts, name)
		}
		rs.Close()
		if len(parts) != 1 || !strings.HasSuffix(parts[0], "_1_1_0") {
			t.Errorf("%s: got parts %v, want one part of one insert (…_1_1_0)", table, parts)
		}
	}
}
