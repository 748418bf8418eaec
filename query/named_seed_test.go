package query_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
)

// seedAll stores, through SQL on engine e, rows with known answers for every
// named query (see TestNamedQueries), two minutes before now, and replays
// of the first 20 results, RUM probe fetches and page views.
//
//	results   a-br (region sa, country BR): check cdn-a on https://a/, CDN
//	          fastly, member cdn-a, POP GRU: 100 successes with ttfb 1..100,
//	          total ttfb+10, dns 1, connect 2, tls 3, cache hit for 1..75
//	          else miss, certificate CN=a by R3 with 30 days left (10 for
//	          one), valid in both trust stores for 1..90; 10 failures.
//	          a-us (na, US): check cdn-b on https://b/, CDN akamai, no member,
//	          POPs IAD/EWR: 50 successes, ttfb 200, total 210, CN=b by E1,
//	          50 days, TLS 1.2, no trust check, no cache status.
//	rum_cdn   shop, BR, mobile, probe_cold via cdn-a: ttfb 1..100, and 10
//	          errors; bots and kind host are left out by the queries.
//	pageviews shop, BR, mobile, /p: LCP 100·i, INP 10·i, CLS i/100, FCP 10·i,
//	          TTFB i for i = 1..100; US desktop: 10 views with only TTFB 5;
//	          3 BR bots.
//	agents    a-br, a-us, a-silent (no heartbeat), a-off (disabled later).
//	steering  pool www, scope global: cdn-a 60, 70 then 80, cdn-b 40, 30
//	          then 20: two decisions in one minute and one in the next.
func seedAll(t *testing.T, e *chtest.Engine, now time.Time) {
	t.Helper()
	ts := now.Add(-2 * time.Minute).Unix()
	var res, rum, pv []string
	for i := 1; i <= 110; i++ {
		id := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		if i > 100 {
			res = append(res, fmt.Sprintf("(toDateTime(%d), '%s', 'a-br', 'sa', 'cdn-a', 'http', 'https://a/', 0, NULL, NULL, NULL, NULL, NULL, 'fastly', 'cdn-a', 'GRU', '', '', '', NULL, 'TLS 1.3', '', [], [], NULL)", ts, id))
			continue
		}
		cache, valid := "hit", "[1, 1]"
		if i > 75 {
			cache = "miss"
		}
		if i > 90 {
			valid = "[1, 0]"
		}
		days := 30
		if i == 7 {
			days = 10
		}
		res = append(res, fmt.Sprintf("(toDateTime(%d), '%s', 'a-br', 'sa', 'cdn-a', 'http', 'https://a/', 1, 1, 2, 3, %d, %d, 'fastly', 'cdn-a', 'GRU', '%s', 'CN=a', 'R3', %d, 'TLS 1.3', 'sha-a', ['system', 'mozilla'], %s, %d)",
			ts, id, i, i+10, cache, days, valid, i*1_000_000))
	}
	for i := 1; i <= 50; i++ {
		pop := []string{"IAD", "EWR"}[i%2]
		res = append(res, fmt.Sprintf("(toDateTime(%d), '00000000-0000-0000-0001-%012d', 'a-us', 'na', 'cdn-b', 'http', 'https://b/', 1, 1, 2, 3, 200, 210, 'akamai', '', '%s', '', 'CN=b', 'E1', 50, 'TLS 1.2', 'sha-b', [], [], NULL)", ts, i, pop))
	}
	for i := 1; i <= 110; i++ {
		ttfb, fail := fmt.Sprint(i), 0
		if i > 100 {
			ttfb, fail = "NULL", 1
		}
		rum = append(rum, fmt.Sprintf("(toDateTime(%d), 'shop', 'pv%d', 'BR', 'SP', 'mobile', 0, 'probe_cold', 'cdn-a', 'a.example', %s, %d, 200)", ts, i, ttfb, fail))
	}
	for i := 1; i <= 5; i++ {
		rum = append(rum, fmt.Sprintf("(toDateTime(%d), 'shop', 'bot%d', 'BR', 'SP', 'mobile', 1, 'probe_cold', 'cdn-a', 'a.example', 9999, 0, 200)", ts, i))
		rum = append(rum, fmt.Sprintf("(toDateTime(%d), 'shop', 'pv%d', 'BR', 'SP', 'mobile', 0, 'host', 'cdn-a', 'a.example', 9999, 0, 200)", ts, i))
	}
	for i := 1; i <= 100; i++ {
		pv = append(pv, fmt.Sprintf("(toDateTime(%d), 'shop', 'v%d', 'https://shop.example/p?i=%d', 'BR', 'SP', 'mobile', 'Chrome', 'Android', 0, %d, %d, %g, %d, %d)", ts, i, i, 100*i, 10*i, float64(i)/100, 10*i, i))
	}
	for i := 1; i <= 10; i++ {
		pv = append(pv, fmt.Sprintf("(toDateTime(%d), 'shop', 'u%d', 'https://shop.example/', 'US', 'CA', 'desktop', 'Firefox', 'Linux', 0, NULL, NULL, NULL, NULL, 5)", ts, i))
	}
	for i := 1; i <= 3; i++ {
		pv = append(pv, fmt.Sprintf("(toDateTime(%d), 'shop', 'b%d', 'https://shop.example/p', 'BR', 'SP', 'mobile', 'bot', 'Linux', 1, 1, 1, 1, 1, 1)", ts, i))
	}
	base := now.Truncate(time.Minute).Add(-10 * time.Minute).Unix()
	var steer []string
	for i, d := range []struct {
		at     int64
		wa, wb int
	}{{10, 60, 40}, {20, 70, 30}, {70, 80, 20}} {
		for j, m := range []struct {
			name string
			w    int
		}{{"cdn-a", d.wa}, {"cdn-b", d.wb}} {
			steer = append(steer, fmt.Sprintf("(toDateTime(%d), %d, 'www', 'global', %d, '%s', %d, 'ok')", base+d.at, i+1, j, m.name, m.w))
		}
	}
	resCols := "ts, id, agent, region, check_name, kind, target, ok, dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms, cdn, cdn_member, cdn_pop, cdn_cache, cert_subject, cert_issuer, cert_days_left, tls_version, cert_sha256, trust_store, trust_valid, throughput_bps"
	rumCols := "ts, site, pv, country, region, device, is_bot, kind, cdn, host, ttfb_ms, error, status"
	pvCols := "ts, site, pv, url, country, region, device, browser, os, is_bot, lcp_ms, inp_ms, cls, fcp_ms, ttfb_ms"
	for _, q := range []string{
		"INSERT INTO results (" + resCols + ") VALUES " + strings.Join(res, ", "),
		"INSERT INTO results (" + resCols + ", replay) VALUES " + replayed(res[:20]), // a replay
		"INSERT INTO rum_cdn (" + rumCols + ") VALUES " + strings.Join(rum, ", "),
		"INSERT INTO rum_cdn (" + rumCols + ", replay) VALUES " + replayed(rum[:20]),
		"INSERT INTO rum_pageviews (" + pvCols + ") VALUES " + strings.Join(pv, ", "),
		"INSERT INTO rum_pageviews (" + pvCols + ", replay) VALUES " + replayed(pv[:20]),
		"INSERT INTO agents (name, region, token_sha256, created_at, disabled, version) VALUES ('a-br', 'sa', '', now(), 0, 1), ('a-us', 'na', '', now(), 0, 1), ('a-silent', 'eu', '', now(), 0, 1), ('a-off', 'eu', '', now(), 0, 1), ('a-off', 'eu', '', now(), 1, 2)",
		"INSERT INTO agent_countries (agent, country, version) VALUES ('a-br', 'AR', 1), ('a-br', 'BR', 2), ('a-us', 'US', 1)",
		fmt.Sprintf("INSERT INTO agent_heartbeats (agent, ts, spool_results, spool_bytes) VALUES ('a-br', toDateTime(%d), 5, 500), ('a-br', toDateTime(%d), 7, 700), ('a-us', toDateTime(%d), 0, 0), ('a-us', toDateTime(%d), 99, 99)",
			now.Unix()-60, now.Unix()-30, now.Unix()-10, now.Unix()-3*3600),
		"INSERT INTO steering_history (computed_at, decision, pool, scope, member_index, member, weight, state) VALUES " + strings.Join(steer, ", "),
	} {
		if _, err := e.Exec(q); err != nil {
			t.Fatalf("cannot seed: %v\n%.300s", err, q)
		}
	}
}

// replayed returns the VALUES tuples again, marked replay = 1 as the
// collector marks what it inserts again.
func replayed(tuples []string) string {
	out := make([]string, len(tuples))
	for i, t := range tuples {
		out[i] = strings.TrimSuffix(t, ")") + ", 1)"
	}
	return strings.Join(out, ", ")
}
