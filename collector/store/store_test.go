package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

func f(v float64) *float64 { return &v }

func TestMigrateIsIdempotent(t *testing.T) {
	o, conn := chtest.New(t)
	n, err := store.Migrate(context.Background(), o, nil)
	if err != nil || n != 0 {
		t.Fatalf("second migrate: got %d applied, err %v; want 0, nil", n, err)
	}
	ms, _ := store.Migrations()
	var recorded uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM schema_migrations FINAL").Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if int(recorded) != len(ms) {
		t.Errorf("got %d recorded migrations, want %d", recorded, len(ms))
	}
}

func TestMigrateRejectsBadDatabaseName(t *testing.T) {
	_, err := store.Migrate(context.Background(), store.Options{Addr: chtest.Addr(t), Database: "x; DROP"}, nil)
	if err == nil {
		t.Fatal("got no error for database name with SQL in it")
	}
}

func TestAgents(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	tok, err := store.AddAgent(ctx, conn, "ams-1", "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 40 || tok[:4] != store.TokenPrefix {
		t.Errorf("got token %q, want %s + 43 chars", tok, store.TokenPrefix)
	}
	if _, err := store.AddAgent(ctx, conn, "ams-1", "eu-west"); err == nil {
		t.Error("adding the same agent twice: got no error")
	}
	if _, err := store.AddAgent(ctx, conn, "bad name", "x"); err == nil {
		t.Error("agent name with a space: got no error")
	}
	agents, err := store.ListAgents(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0].Region != "eu-west" || agents[0].TokenHash != store.HashToken(tok) {
		t.Errorf("got agents %+v, want ams-1 in eu-west with the token's hash", agents)
	}
	var n uint64
	conn.QueryRow(ctx, "SELECT count() FROM agents WHERE token_sha256 = ? OR position(token_sha256, ?) > 0", tok, tok[4:]).Scan(&n)
	if n != 0 {
		t.Error("the raw token is stored")
	}
}

func TestWriterStoresEveryKindAndDedupes(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	now := time.Now().UTC()
	reused := false
	ok := result.New("ams-1", "home", result.KindHTTP, "https://example.com/", now)
	ok.OK, ok.DNSMs, ok.TotalMs = true, f(1.5), f(20.25)
	ok.HTTP = &result.HTTP{Status: 200, ConnReused: &reused, CDN: "fastly"}
	ok.TLS = &result.TLS{TLSVersion: "TLS 1.3", CertSANs: []string{"a", "b"},
		Trust: []result.TrustCheck{{Store: "system", Valid: true}, {Store: "corp", Error: result.ErrTLSCertUntrusted}}}
	bad := result.New("ams-1", "dns", result.KindDNS, "nope.example", now)
	bad.Fail(result.ErrDNSNXDomain, nil)
	bad.DNS = &result.DNS{Rcode: "NXDOMAIN", Answers: nil}
	ping := result.New("ams-1", "ping", result.KindICMP, "127.0.0.1", now)
	ping.OK, ping.ICMP = true, &result.ICMP{Sent: 3, Received: 2, LossPct: 33.3, AvgMs: f(0.1)}
	page := result.New("ams-1", "page", result.KindBrowser, "https://example.com/", now)
	page.OK, page.TotalMs = true, f(900)
	page.Browser = &result.Browser{FCPMs: f(120), Resources: 5, PageBytes: 3000, Hosts: []result.BrowserHost{
		{Host: "cdn.example.com", CDN: "cloudflare", CDNPoP: "AMS", Requests: 4, CacheHits: 3, Bytes: 2500, MaxMs: f(210.5)},
		{Host: "example.com:8443", Requests: 1, Failed: 1, Bytes: 500},
	}}
	rows := []store.Row{{Result: *ok, Region: "eu"}, {Result: *bad, Region: "eu"}, {Result: *ping, Region: "eu"}, {Result: *page, Region: "eu"}}

	for i := 0; i < 2; i++ { // the second write is a retry with the same ids
		if err := w.Write(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM results FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("got %d rows after a replay, want 4", n)
	}
	var (
		dns, tls, ttfb *float64
		status         uint16
		cdn, errc      string
		sans, stores   []string
		valid          []uint8
	)
	err = conn.QueryRow(ctx, "SELECT dns_ms, tls_ms, ttfb_ms, http_status, cdn, cert_sans, trust_store, trust_valid FROM results WHERE id = ? LIMIT 1", ok.ID).
		Scan(&dns, &tls, &ttfb, &status, &cdn, &sans, &stores, &valid)
	if err != nil {
		t.Fatal(err)
	}
	if dns == nil || *dns != 1.5 || tls != nil || ttfb != nil {
		t.Errorf("got dns=%v tls=%v ttfb=%v, want 1.5, NULL, NULL (absent is not zero)", dns, tls, ttfb)
	}
	if status != 200 || cdn != "fastly" || len(sans) != 2 || len(stores) != 2 || valid[0] != 1 || valid[1] != 0 {
		t.Errorf("got status=%d cdn=%q sans=%v stores=%v valid=%v", status, cdn, sans, stores, valid)
	}
	if err := conn.QueryRow(ctx, "SELECT error FROM results WHERE id = ? LIMIT 1", bad.ID).Scan(&errc); err != nil || errc != result.ErrDNSNXDomain {
		t.Errorf("got error class %q (%v), want %s", errc, err, result.ErrDNSNXDomain)
	}

	// The per-host breakdown of a browser load: parallel arrays, -1 for an
	// absent max_ms.
	var (
		bhHost, bhCDN, bhPoP          []string
		bhReqs, bhFailed, bhCacheHits []uint32
		bhBytes                       []uint64
		bhMaxMs                       []float64
	)
	err = conn.QueryRow(ctx, "SELECT bh_host, bh_cdn, bh_cdn_pop, bh_requests, bh_failed, bh_cache_hits, bh_bytes, bh_max_ms FROM results WHERE id = ? LIMIT 1", page.ID).
		Scan(&bhHost, &bhCDN, &bhPoP, &bhReqs, &bhFailed, &bhCacheHits, &bhBytes, &bhMaxMs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"bh_host", bhHost, []string{"cdn.example.com", "example.com:8443"}},
		{"bh_cdn", bhCDN, []string{"cloudflare", ""}},
		{"bh_cdn_pop", bhPoP, []string{"AMS", ""}},
		{"bh_requests", bhReqs, []uint32{4, 1}},
		{"bh_failed", bhFailed, []uint32{0, 1}},
		{"bh_cache_hits", bhCacheHits, []uint32{3, 0}},
		{"bh_bytes", bhBytes, []uint64{2500, 500}},
		{"bh_max_ms", bhMaxMs, []float64{210.5, -1}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var others uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM results FINAL WHERE kind != 'browser' AND (length(bh_host) != 0 OR length(bh_max_ms) != 0)").Scan(&others); err != nil || others != 0 {
		t.Errorf("got %d non-browser rows with a host breakdown (%v), want 0", others, err)
	}
}

// While ClickHouse cannot take inserts (here: the table is renamed away),
// writes are acknowledged from the disk spool and drained once it can.
func TestWriterSpoolsWhileClickHouseIsAway(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: dir, DrainEvery: 20 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	batch := func(n int) []store.Row {
		rows := make([]store.Row, n)
		for i := range rows {
			r := result.New("a", "c", result.KindTCP, "127.0.0.1:1", time.Now())
			r.OK, r.ConnectMs = true, f(float64(i))
			rows[i] = store.Row{Result: *r, Region: "eu", ReceivedAt: time.Now()}
		}
		return rows
	}
	if err := conn.Exec(ctx, "RENAME TABLE results TO results_away"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Write(ctx, batch(100)); err != nil {
			t.Fatalf("write %d while ClickHouse is away: got %v, want it spooled and acknowledged", i, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.ndjson"))
	if len(files) == 0 {
		t.Fatal("nothing in the spool directory")
	}
	if err := conn.Exec(ctx, "RENAME TABLE results_away TO results"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var n uint64
	for time.Now().Before(deadline) {
		conn.QueryRow(ctx, "SELECT count() FROM results FINAL").Scan(&n)
		if files, _ = filepath.Glob(filepath.Join(dir, "seg-*")); n == 300 && len(files) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("after ClickHouse came back: got %d rows and %d spool files, want 300 and 0", n, len(files))
}

// With ClickHouse away, writes fill the journal to its cap and then fail
// with ErrSpoolFull (503: retry later); a write larger than the whole cap
// fails with ErrBatchTooLarge (413: waiting would never make room).
func TestWriterSpoolFullFails(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: t.TempDir(), SpoolMaxBytes: 4000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	conn.Exec(ctx, "RENAME TABLE results TO results_away")
	defer conn.Exec(ctx, "RENAME TABLE results_away TO results")
	row := func() store.Row {
		r := result.New("a", "c", result.KindTCP, "127.0.0.1:1", time.Now())
		r.OK = true
		return store.Row{Result: *r}
	}
	written := 0
	for ; written < 100; written++ {
		if err = w.Write(ctx, []store.Row{row()}); err != nil {
			break
		}
	}
	if !errors.Is(err, store.ErrSpoolFull) || written == 0 {
		t.Errorf("after %d rows written: got %v, want ErrSpoolFull after at least one", written, err)
	}
	big := make([]store.Row, 100)
	for i := range big {
		big[i] = row()
	}
	if err := w.Write(ctx, big); !errors.Is(err, store.ErrBatchTooLarge) {
		t.Errorf("a batch larger than the cap: got %v, want ErrBatchTooLarge", err)
	}
}
