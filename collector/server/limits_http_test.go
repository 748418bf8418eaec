package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// limitEnv is the real beacon handler, behind the collector's http.Server
// on a loopback port, over a real journal and ClickHouse, with two sites.
// Requests come through a trusted proxy (loopback), so X-Forwarded-For
// names the source.
type limitEnv struct {
	conn       driver.Conn
	addr       string
	shop, blog string // site keys
}

func newLimitEnv(t *testing.T, limits server.Limits, timeouts server.Timeouts) *limitEnv {
	t.Helper()
	_, conn := chtest.New(t)
	e := &limitEnv{conn: conn}
	for _, s := range []struct {
		name string
		key  *string
	}{{"shop", &e.shop}, {"blog", &e.blog}} {
		site, err := store.NewSite(s.name, []string{shopOrigin}, 1, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *s.key, err = store.AddSite(context.Background(), conn, &site); err != nil {
			t.Fatal(err)
		}
	}
	trusted, _ := enrich.ParsePrefixes([]string{"127.0.0.0/8"})
	en, err := enrich.Open(enrich.Options{TrustedProxies: trusted})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	w, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	h := server.New(server.Config{Sites: store.NewSiteCache(conn), Beacons: w, Enricher: en, Limits: limits})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.NewHTTPServer(h, timeouts)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.addr = ln.Addr().String()
	return e
}

// post sends one beacon for site from source (X-Forwarded-For) and returns
// the status and Retry-After.
func (e *limitEnv) post(t *testing.T, site, source string, n int) (int, string) {
	t.Helper()
	pv := fmt.Sprintf("00000000-0000-4000-8000-%012x", n)
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/beacon", strings.NewReader(string(minimalBeacon(site, pv, false))))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", shopOrigin)
	req.Header.Set("X-Forwarded-For", source)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// stored waits (up to 10s) for want page views to reach ClickHouse from
// the journal, and returns how many did.
func (e *limitEnv) stored(t *testing.T, want uint64) uint64 {
	t.Helper()
	var n uint64
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM rum_pageviews FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rejected reads meridian_beacon_rejected_total for reason from /metrics
// (the process's: compare before and after).
func (e *limitEnv) rejected(t *testing.T, reason string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + e.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `meridian_beacon_rejected_total{reason="`+reason+`"} `); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}

// flood runs rounds of one second each (on the buckets' clock): the
// flooder sends 10 beacons a round, the well-behaved sender 1. At 2 a
// second with a burst of 4 the flooder gets exactly 4 + 2 × (rounds - 1)
// through, and the other every one.
func flood(t *testing.T, e *limitEnv, clock *fakeClock, flooder, polite func(n int) (int, string)) {
	t.Helper()
	const rounds = 5
	var floodOK, flood429, politeOK, n int
	for range rounds {
		for range 10 {
			n++
			switch status, retry := flooder(n); {
			case status == 204:
				floodOK++
			case status == 429 && retry != "" && retry != "0":
				flood429++
			default:
				t.Fatalf("flooder got %d (Retry-After %q), want 204 or 429 with Retry-After", status, retry)
			}
		}
		n++
		if status, _ := polite(n); status == 204 {
			politeOK++
		}
		clock.advance(time.Second)
	}
	if want := 4 + 2*(rounds-1); floodOK != want || flood429 != 10*rounds-want {
		t.Errorf("flooder: %d taken, %d refused with 429; want %d and %d", floodOK, flood429, want, 10*rounds-want)
	}
	if politeOK != rounds {
		t.Errorf("the well-behaved sender got %d of %d beacons taken during the flood, want all", politeOK, rounds)
	}
	if want := uint64(floodOK + politeOK); e.stored(t, want) != want {
		t.Errorf("%d page views stored, want the %d taken", e.stored(t, want), want)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestFloodingSourceCannotStarveOthers(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newLimitEnv(t, server.Limits{SourceRate: 2, SourceBurst: 4, Now: clock.now}, server.Timeouts{})
	before := e.rejected(t, "source_rate")
	flood(t, e, clock,
		func(n int) (int, string) { return e.post(t, e.shop, "203.0.113.9", n) },
		func(n int) (int, string) { return e.post(t, e.shop, "198.51.100.23", n) })
	if d := e.rejected(t, "source_rate") - before; d != 50-12 {
		t.Errorf("meridian_beacon_rejected_total{reason=\"source_rate\"} rose by %v, want 38", d)
	}
	// The address (its hash) chose the bucket; the row has none.
	var cols uint64
	err := e.conn.QueryRow(context.Background(), "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'rum_pageviews' AND (name LIKE '%ip%' OR name LIKE '%addr%')").Scan(&cols)
	if err != nil || cols != 0 {
		t.Errorf("rum_pageviews has %d address columns (err %v), want none", cols, err)
	}
}

func TestFloodingSiteCannotStarveOthers(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newLimitEnv(t, server.Limits{SiteRate: 2, SiteBurst: 4, Now: clock.now}, server.Timeouts{})
	before := e.rejected(t, "site_rate")
	// The flooding site's beacons come from many addresses, as a real
	// spike would: only the site's bucket can hold it.
	flood(t, e, clock,
		func(n int) (int, string) { return e.post(t, e.shop, fmt.Sprintf("203.0.113.%d", n%250+1), n) },
		func(n int) (int, string) { return e.post(t, e.blog, "198.51.100.23", n) })
	if d := e.rejected(t, "site_rate") - before; d != 50-12 {
		t.Errorf("meridian_beacon_rejected_total{reason=\"site_rate\"} rose by %v, want 38", d)
	}
}

// dribble writes head at once and then rest one byte a second, on a fresh
// connection, until the server answers or closes it; it returns how long
// that took and the first line it got ("" when it closed without a word).
func dribble(addr, head, rest string) (time.Duration, string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	start, got := time.Now(), make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	conn.Write([]byte(head))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i < len(rest) {
			conn.Write([]byte{rest[i]}) // fails once the server hung up; the reader says when
		}
		select {
		case line := <-got:
			return time.Since(start), line, nil
		case <-tick.C:
		}
	}
}

func TestSlowClientsAreCutOthersServed(t *testing.T) {
	const cut = 2 * time.Second
	e := newLimitEnv(t, server.Limits{BeaconReadTimeout: cut}, server.Timeouts{ReadHeader: cut})
	body := string(minimalBeacon(e.shop, "00000000-0000-4000-8000-00000000abcd", false))
	headers := "POST /v1/beacon HTTP/1.1\r\nHost: collector\r\nContent-Type: text/plain\r\nOrigin: " + shopOrigin +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	type outcome struct {
		took time.Duration
		line string
		err  error
	}
	slowHeaders, slowBody := make(chan outcome, 1), make(chan outcome, 1)
	go func() { d, l, err := dribble(e.addr, "", headers); slowHeaders <- outcome{d, l, err} }()
	go func() { d, l, err := dribble(e.addr, headers, body); slowBody <- outcome{d, l, err} }()

	// Meanwhile others are served as usual.
	for i := range 5 {
		start := time.Now()
		if status, _ := e.post(t, e.shop, "198.51.100.23", i); status != 204 || time.Since(start) > cut {
			t.Errorf("beacon %d beside the slow clients: %d after %v, want 204 at once", i, status, time.Since(start))
		}
	}
	for _, c := range []struct {
		name string
		got  chan outcome
		want []string
	}{
		// net/http hangs up, or says 400, as the timeout finds the headers.
		{"headers dribbled", slowHeaders, []string{"", "HTTP/1.1 400 Bad Request"}},
		{"body dribbled", slowBody, []string{"HTTP/1.1 408 Request Timeout"}},
	} {
		o := <-c.got
		if o.err != nil {
			t.Fatalf("%s: %v", c.name, o.err)
		}
		if o.took < cut-100*time.Millisecond || o.took > cut+3*time.Second {
			t.Errorf("%s: cut after %v, want about %v", c.name, o.took.Round(time.Millisecond), cut)
		}
		if !slices.Contains(c.want, o.line) {
			t.Errorf("%s: got %q, want one of %q", c.name, o.line, c.want)
		}
	}
	if got := e.stored(t, 5); got != 5 {
		t.Errorf("%d page views stored, want the 5 sent in full", got)
	}
}
