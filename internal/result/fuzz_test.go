package result

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeNDJSON: whatever an agent (or an attacker with a token) sends,
// decoding never panics, every result it accepts is within the declared
// ranges (it fits its ClickHouse column as is: see fitsColumns), and every
// batch it accepts re-encodes to results that decode and validate again.
func FuzzDecodeNDJSON(f *testing.F) {
	golden, _ := filepath.Glob("testdata/*.json")
	for _, g := range golden {
		b, _ := os.ReadFile(g)
		var compact bytes.Buffer
		json.Compact(&compact, b)
		f.Add(compact.Bytes())
		f.Add(append(append(compact.Bytes(), '\n'), compact.Bytes()...))
	}
	for _, seed := range boundarySeeds() {
		f.Add(seed)
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := DecodeNDJSON(bytes.NewReader(body))
		if err != nil {
			if rs != nil {
				t.Fatalf("got %d results with error %v", len(rs), err)
			}
			return
		}
		for i := range rs {
			if err := fitsColumns(&rs[i]); err != "" {
				t.Fatalf("accepted a result that does not fit its columns: %s", err)
			}
			line, err := AppendNDJSON(nil, &rs[i])
			if err != nil {
				t.Fatal(err)
			}
			var back Result
			if err := Unmarshal(bytes.TrimSpace(line), &back); err != nil {
				t.Fatalf("accepted result does not decode again: %v\n%s", err, line)
			}
		}
	})
}

// boundarySeeds are the golden results with one value at and just past each
// declared boundary (ranges.go), for the fuzzer to start from.
func boundarySeeds() [][]byte {
	var out [][]byte
	seed := func(name, from string, to ...string) {
		b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			return
		}
		var compact bytes.Buffer
		json.Compact(&compact, b)
		if !bytes.Contains(compact.Bytes(), []byte(from)) {
			panic(fmt.Sprintf("boundary seed: %s has no %s", name, from))
		}
		for _, t := range to {
			out = append(out, bytes.Replace(compact.Bytes(), []byte(from), []byte(t), 1))
		}
	}
	const goldTS = `"ts":"2026-11-25T06:50:01.123456789Z"`
	seed("http_ok", goldTS, `"ts":"1970-01-01T00:00:00Z"`, `"ts":"1969-12-31T23:59:59.999Z"`,
		`"ts":"2106-02-07T06:28:15.999Z"`, `"ts":"2106-02-07T06:28:16Z"`, `"ts":"2200-01-01T00:00:00Z"`,
		`"ts":"1900-01-01T00:00:00Z"`, `"ts":"2026-11-25T06:50:01+14:00"`)
	seed("http_ok", `"http_status":200`, `"http_status":100`, `"http_status":99`, `"http_status":599`,
		`"http_status":600`, `"http_status":99999`, `"http_status":65736`, `"http_status":-1`)
	seed("http_ok", `"total_ms":165`, `"total_ms":3600000`, `"total_ms":3600000.001`, `"total_ms":-0.001`, `"total_ms":1e308`)
	seed("http_ok", `"http_bytes":1256`, `"http_bytes":-1`, `"http_bytes":9223372036854775807`)
	seed("http_ok", `"http_bytes":1256`, `"http_bytes":1256,"throughput_bps":1e12`, `"http_bytes":1256,"throughput_bps":1.0000001e12`,
		`"http_bytes":1256,"throughput_bps":-1`, `"http_bytes":1256,"throughput_bps":0,"alt_svc":"h3=\":443\"; ma=86400"`)
	seed("http_ok", `"dns_source":"resolver"`, `"dns_source":"resolver","redirect_hop":255`, `"dns_source":"resolver","redirect_hop":256`)
	seed("http_ok", `"cert_not_after":"2027-01-01T00:00:00Z"`, `"cert_not_after":"2106-02-07T06:28:15Z"`,
		`"cert_not_after":"2106-02-07T06:28:16Z"`, `"cert_not_after":"9999-12-31T23:59:59Z"`, `"cert_not_after":"1969-12-31T23:59:59Z"`)
	seed("http_ok", `"cert_days_left":36.7`, `"cert_days_left":-3660000`, `"cert_days_left":3660001`)
	seed("http_ok", `"cpu_steal_pct":0.4`, `"cpu_steal_pct":100`, `"cpu_steal_pct":100.1`, `"cpu_steal_pct":-1`)
	seed("dns_nxdomain", `"ttl":300`, `"ttl":4294967295`, `"ttl":4294967296`, `"ttl":-1`)
	seed("icmp_ok", `"ping_sent":3`, `"ping_sent":65535`, `"ping_sent":65536`, `"ping_sent":-1`)
	seed("icmp_ok", `"ping_received":3`, `"ping_received":65536`, `"ping_received":3,"ping_dups":65536`)
	seed("icmp_ok", `"ping_loss_pct":0`, `"ping_loss_pct":100`, `"ping_loss_pct":100.5`, `"ping_loss_pct":-1`)
	seed("traceroute_ok", `"trace_port":33434`, `"trace_port":65535`, `"trace_port":65536`, `"trace_port":-1`)
	seed("traceroute_ok", `"ttl":1`, `"ttl":255`, `"ttl":256`, `"ttl":0`, `"ttl":-1`)
	seed("traceroute_ok", `"sent":3,"received":2`, `"sent":65535,"received":2`, `"sent":65536,"received":2`,
		`"sent":3,"received":4`, `"sent":3,"received":-1`)
	seed("traceroute_ok", `"loss_pct":33.3`, `"loss_pct":100`, `"loss_pct":100.1`, `"loss_pct":-1`)
	seed("traceroute_ok", `"avg_ms":12.5`, `"avg_ms":-1`, `"avg_ms":3600001`, `"avg_ms":0`)
	seed("browser_ok", `"resources":27`, `"resources":4294967295`, `"resources":4294967296`, `"resources":-1`)
	seed("browser_ok", `"page_bytes":1843200`, `"page_bytes":-1`)
	seed("browser_ok", `"console_errors":1`, `"console_errors":4294967296`)
	seed("browser_ok", `"cls":0.02`, `"cls":1000`, `"cls":1000.01`, `"cls":-0.01`)
	seed("browser_ok", `"requests":18`, `"requests":4294967296`, `"requests":-1`)
	seed("browser_ok", `"max_ms":412.5`, `"max_ms":-1`, `"max_ms":3600001`)
	return out
}

// fitsColumns says how an accepted result would be stored wrong (""
// when it would not): each value as collector/store/columns.go converts it
// must equal the value sent, and stay within the declared range.
func fitsColumns(r *Result) string {
	var bad []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	dt := func(name string, t time.Time) {
		u := t.Unix()
		check(u >= 0 && u <= math.MaxUint32 && time.Unix(int64(uint32(u)), 0).Equal(t.Truncate(time.Second)),
			"%s %s outside DateTime", name, t.Format(time.RFC3339Nano))
	}
	ms := func(name string, v *float64) {
		check(v == nil || (*v >= 0 && *v <= MaxMs), "%s %v", name, v)
	}
	dt("ts", r.TS)
	check(!r.TS.After(clock().Add(MaxFutureSkew)), "ts %s too far ahead", r.TS)
	for name, v := range map[string]*float64{"dns_ms": r.DNSMs, "connect_ms": r.ConnectMs, "tls_ms": r.TLSMs,
		"ttfb_ms": r.TTFBMs, "transfer_ms": r.TransferMs, "total_ms": r.TotalMs} {
		ms(name, v)
	}
	if h := r.HTTP; h != nil {
		check(int(uint16(h.Status)) == h.Status && (h.Status == 0 || h.Status >= 100 && h.Status <= 599), "http_status %d", h.Status)
		check(h.Bytes == nil || *h.Bytes >= 0, "http_bytes %v", h.Bytes)
		check(int(uint8(h.Hop)) == h.Hop, "redirect_hop %d", h.Hop)
		check(h.ThroughputBps == nil || *h.ThroughputBps >= 0 && *h.ThroughputBps <= MaxThroughputBps, "throughput_bps %v", h.ThroughputBps)
	}
	if t := r.TLS; t != nil {
		if t.CertNotAfter != nil {
			dt("cert_not_after", *t.CertNotAfter)
		}
		check(t.CertDaysLeft == nil || math.Abs(*t.CertDaysLeft) <= MaxCertDaysLeft, "cert_days_left %v", t.CertDaysLeft)
	}
	if p := r.ICMP; p != nil {
		for name, v := range map[string]int{"ping_sent": p.Sent, "ping_received": p.Received, "ping_dups": p.Dups} {
			check(int(uint16(v)) == v, "%s %d", name, v)
		}
		check(p.LossPct >= 0 && p.LossPct <= 100, "ping_loss_pct %v", p.LossPct)
		for name, v := range map[string]*float64{"ping_min_ms": p.MinMs, "ping_avg_ms": p.AvgMs, "ping_max_ms": p.MaxMs, "ping_stddev_ms": p.StddevMs} {
			ms(name, v)
		}
	}
	if b := r.Browser; b != nil {
		for name, v := range map[string]*float64{"fcp_ms": b.FCPMs, "lcp_ms": b.LCPMs, "tbt_ms": b.TBTMs,
			"dom_content_loaded_ms": b.DOMContentMs, "load_ms": b.LoadMs} {
			ms(name, v)
		}
		check(b.CLS == nil || *b.CLS >= 0 && *b.CLS <= MaxCLS, "cls %v", b.CLS)
		check(int(uint32(b.Resources)) == b.Resources, "resources %d", b.Resources)
		check(int(uint32(b.ConsoleErrors)) == b.ConsoleErrors, "console_errors %d", b.ConsoleErrors)
		check(b.PageBytes >= 0, "page_bytes %d", b.PageBytes)
		for i, h := range b.Hosts {
			check(int(uint32(h.Requests)) == h.Requests && int(uint32(h.Failed)) == h.Failed &&
				int(uint32(h.CacheHits)) == h.CacheHits && h.Bytes >= 0, "browser_hosts[%d] counts", i)
			ms(fmt.Sprintf("browser_hosts[%d].max_ms", i), h.MaxMs)
		}
	}
	if tr := r.Traceroute; tr != nil {
		check(int(uint16(tr.Port)) == tr.Port, "trace_port %d", tr.Port)
		check(len(tr.Hops) <= MaxTTL, "%d hops", len(tr.Hops))
		for i, h := range tr.Hops {
			check(h.TTL >= 1 && int(uint8(h.TTL)) == h.TTL, "trace_hops[%d].ttl %d", i, h.TTL)
			check(int(uint16(h.Sent)) == h.Sent && h.Received >= 0 && h.Received <= h.Sent, "trace_hops[%d] counts", i)
			check(h.LossPct >= 0 && h.LossPct <= 100, "trace_hops[%d].loss_pct %v", i, h.LossPct)
			for name, v := range map[string]*float64{"min_ms": h.MinMs, "avg_ms": h.AvgMs, "max_ms": h.MaxMs, "stddev_ms": h.StddevMs} {
				ms(fmt.Sprintf("trace_hops[%d].%s", i, name), v)
			}
		}
	}
	if h := r.Host; h != nil {
		check(h.CPUStealPct == nil || *h.CPUStealPct >= 0 && *h.CPUStealPct <= 100, "cpu_steal_pct %v", h.CPUStealPct)
		check(h.ClockOffsetMs == nil || math.Abs(*h.ClockOffsetMs) <= MaxClockOffsetMs, "clock_offset_ms %v", h.ClockOffsetMs)
	}
	return strings.Join(bad, "; ")
}

// The seeds exercise both sides of every boundary: some are accepted, and
// the rest are refused naming a field.
func TestBoundarySeeds(t *testing.T) {
	accepted, refused := 0, 0
	for _, s := range boundarySeeds() {
		rs, err := DecodeNDJSON(bytes.NewReader(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), `line 1: field "`) {
				t.Errorf("refused without naming a field: %v\n%s", err, s)
			}
			refused++
			continue
		}
		if bad := fitsColumns(&rs[0]); bad != "" {
			t.Errorf("accepted out of range: %s", bad)
		}
		accepted++
	}
	t.Logf("%d seeds accepted, %d refused", accepted, refused)
	if accepted < 15 || refused < 30 {
		t.Errorf("got %d accepted and %d refused seeds; the seeds no longer straddle the boundaries", accepted, refused)
	}
}
