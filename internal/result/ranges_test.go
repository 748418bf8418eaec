package result

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// pinClock sets the decoders' clock for one test.
func pinClock(t *testing.T, now time.Time) {
	t.Helper()
	old := clock
	clock = func() time.Time { return now }
	t.Cleanup(func() { clock = old })
}

func mustRFC3339(s string) time.Time {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return v
}

// The issue's three examples, exactly as a client would send them: each is
// a 400 naming the line and the field, never a row stored wrapped.
func TestRangesIssueExamples(t *testing.T) {
	pinClock(t, ts.Add(time.Minute))
	good, _ := json.Marshal(goldenResults()["http_ok"])
	g := string(good)
	const goldTS = `"ts":"2026-11-25T06:50:01.123456789Z"`
	for _, tc := range []struct{ name, body, want string }{
		{"ts in 2200", strings.Replace(g, goldTS, `"ts":"2200-01-01T00:00:00Z"`, 1), `line 1: field "ts": 2200-01-01T00:00:00Z is out of range`},
		{"ts in 1900", strings.Replace(g, goldTS, `"ts":"1900-01-01T00:00:00Z"`, 1), `line 1: field "ts": 1900-01-01T00:00:00Z is out of range`},
		{"http_status 99999", strings.Replace(g, `"http_status":200`, `"http_status":99999`, 1), `line 1: field "http_status": 99999 is out of range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.body == g {
				t.Fatal("the replacement did not apply")
			}
			res, err := DecodeNDJSON(strings.NewReader(g + "\n" + tc.body))
			want := strings.Replace(tc.want, "line 1", "line 2", 1)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("got %v, want an error starting %q", err, want)
			}
			if res != nil {
				t.Errorf("got %d results with an error", len(res))
			}
		})
	}
}

// One case per boundary: just inside is accepted, just outside is refused
// naming the field.
func TestRanges(t *testing.T) {
	now := mustRFC3339("2026-12-04T12:00:00Z")
	pinClock(t, now)
	type mut = func(r *Result)
	fl := func(v float64) *float64 { return &v }
	cases := []struct {
		name   string
		golden string
		mutate mut
		field  string // "" = accepted
	}{
		// ts: the DateTime column's range, and the clock window.
		{"ts at epoch", "http_ok", func(r *Result) { r.TS = mustRFC3339("1970-01-01T00:00:00Z") }, ""},
		{"ts before epoch", "http_ok", func(r *Result) { r.TS = mustRFC3339("1969-12-31T23:59:59.999Z") }, "ts"},
		{"ts years behind (spooled)", "http_ok", func(r *Result) { r.TS = now.AddDate(-3, 0, 0) }, ""},
		{"ts at future skew", "http_ok", func(r *Result) { r.TS = now.Add(MaxFutureSkew) }, ""},
		{"ts past future skew", "http_ok", func(r *Result) { r.TS = now.Add(MaxFutureSkew + time.Millisecond) }, "ts"},
		{"ts 10 min ahead", "http_ok", func(r *Result) { r.TS = now.Add(10 * time.Minute) }, ""},
		// ms phases: [0, MaxMs].
		{"dns_ms 0", "http_ok", func(r *Result) { r.DNSMs = fl(0) }, ""},
		{"dns_ms negative", "http_ok", func(r *Result) { r.DNSMs = fl(-0.001) }, "dns_ms"},
		{"connect_ms max", "http_ok", func(r *Result) { r.ConnectMs = fl(MaxMs) }, ""},
		{"connect_ms over", "http_ok", func(r *Result) { r.ConnectMs = fl(MaxMs + 1) }, "connect_ms"},
		{"tls_ms over", "http_ok", func(r *Result) { r.TLSMs = fl(MaxMs + 0.5) }, "tls_ms"},
		{"ttfb_ms over", "http_ok", func(r *Result) { r.TTFBMs = fl(1e300) }, "ttfb_ms"},
		{"transfer_ms over", "http_ok", func(r *Result) { r.TransferMs = fl(MaxMs * 2) }, "transfer_ms"},
		{"total_ms max", "http_ok", func(r *Result) { r.TotalMs = fl(MaxMs) }, ""},
		{"total_ms over", "http_ok", func(r *Result) { r.TotalMs = fl(MaxMs + 1) }, "total_ms"},
		// http.
		{"http_status 100", "http_ok", func(r *Result) { r.HTTP.Status = 100 }, ""},
		{"http_status 99", "http_ok", func(r *Result) { r.HTTP.Status = 99 }, "http_status"},
		{"http_status 599", "http_ok", func(r *Result) { r.HTTP.Status = 599 }, ""},
		{"http_status 600", "http_ok", func(r *Result) { r.HTTP.Status = 600 }, "http_status"},
		{"http_status 65536+200", "http_ok", func(r *Result) { r.HTTP.Status = 65536 + 200 }, "http_status"},
		{"http_status negative", "http_ok", func(r *Result) { r.HTTP.Status = -1 }, "http_status"},
		{"http_bytes 0", "http_ok", func(r *Result) { r.HTTP.Bytes = i64(0) }, ""},
		{"http_bytes max", "http_ok", func(r *Result) { r.HTTP.Bytes = i64(math.MaxInt64) }, ""},
		{"http_bytes negative", "http_ok", func(r *Result) { r.HTTP.Bytes = i64(-1) }, "http_bytes"},
		{"redirect_hop 255", "http_ok", func(r *Result) { r.HTTP.Hop = 255 }, ""},
		{"redirect_hop 256", "http_ok", func(r *Result) { r.HTTP.Hop = 256 }, "redirect_hop"},
		{"redirect_hop negative", "http_ok", func(r *Result) { r.HTTP.Hop = -1 }, "redirect_hop"},
		{"throughput_bps 0", "http_ok", func(r *Result) { r.HTTP.ThroughputBps = fl(0) }, ""},
		{"throughput_bps max", "http_ok", func(r *Result) { r.HTTP.ThroughputBps = fl(MaxThroughputBps) }, ""},
		{"throughput_bps over", "http_ok", func(r *Result) { r.HTTP.ThroughputBps = fl(MaxThroughputBps * 1.01) }, "throughput_bps"},
		{"throughput_bps negative", "http_ok", func(r *Result) { r.HTTP.ThroughputBps = fl(-1) }, "throughput_bps"},
		// tls.
		{"cert_not_after max", "http_ok", func(r *Result) { v := mustRFC3339("2106-02-07T06:28:15Z"); r.TLS.CertNotAfter = &v }, ""},
		{"cert_not_after over", "http_ok", func(r *Result) { v := mustRFC3339("2106-02-07T06:28:16Z"); r.TLS.CertNotAfter = &v }, "cert_not_after"},
		{"cert_not_after 9999", "http_ok", func(r *Result) { v := mustRFC3339("9999-12-31T23:59:59Z"); r.TLS.CertNotAfter = &v }, "cert_not_after"},
		{"cert_not_after epoch", "http_ok", func(r *Result) { v := MinTS; r.TLS.CertNotAfter = &v }, ""},
		{"cert_not_after before epoch", "http_ok", func(r *Result) { v := mustRFC3339("1969-12-31T23:59:59Z"); r.TLS.CertNotAfter = &v }, "cert_not_after"},
		{"cert_days_left expired", "http_ok", func(r *Result) { r.TLS.CertDaysLeft = fl(-30.5) }, ""},
		{"cert_days_left max", "http_ok", func(r *Result) { r.TLS.CertDaysLeft = fl(MaxCertDaysLeft) }, ""},
		{"cert_days_left over", "http_ok", func(r *Result) { r.TLS.CertDaysLeft = fl(MaxCertDaysLeft + 1) }, "cert_days_left"},
		{"cert_days_left under", "http_ok", func(r *Result) { r.TLS.CertDaysLeft = fl(-MaxCertDaysLeft - 1) }, "cert_days_left"},
		// icmp: UInt16 counts, percentages, ms.
		{"ping_sent max", "icmp_ok", func(r *Result) { r.ICMP.Sent = MaxPingCount }, ""},
		{"ping_sent over", "icmp_ok", func(r *Result) { r.ICMP.Sent = MaxPingCount + 1 }, "ping_sent"},
		{"ping_sent negative", "icmp_ok", func(r *Result) { r.ICMP.Sent = -1 }, "ping_sent"},
		{"ping_received over", "icmp_ok", func(r *Result) { r.ICMP.Received = MaxPingCount + 1 }, "ping_received"},
		{"ping_received negative", "icmp_ok", func(r *Result) { r.ICMP.Received = -1 }, "ping_received"},
		{"ping_dups max", "icmp_ok", func(r *Result) { r.ICMP.Dups = MaxPingCount }, ""},
		{"ping_dups over", "icmp_ok", func(r *Result) { r.ICMP.Dups = MaxPingCount + 1 }, "ping_dups"},
		{"ping_loss_pct 100", "icmp_ok", func(r *Result) { r.ICMP.LossPct = 100 }, ""},
		{"ping_loss_pct over", "icmp_ok", func(r *Result) { r.ICMP.LossPct = 100.01 }, "ping_loss_pct"},
		{"ping_loss_pct negative", "icmp_ok", func(r *Result) { r.ICMP.LossPct = -1 }, "ping_loss_pct"},
		{"ping_min_ms negative", "icmp_ok", func(r *Result) { r.ICMP.MinMs = fl(-1) }, "ping_min_ms"},
		{"ping_avg_ms over", "icmp_ok", func(r *Result) { r.ICMP.AvgMs = fl(MaxMs + 1) }, "ping_avg_ms"},
		{"ping_max_ms max", "icmp_ok", func(r *Result) { r.ICMP.MaxMs = fl(MaxMs) }, ""},
		{"ping_max_ms over", "icmp_ok", func(r *Result) { r.ICMP.MaxMs = fl(MaxMs + 1) }, "ping_max_ms"},
		{"ping_stddev_ms negative", "icmp_ok", func(r *Result) { r.ICMP.StddevMs = fl(-0.1) }, "ping_stddev_ms"},
		// browser.
		{"fcp_ms over", "browser_ok", func(r *Result) { r.Browser.FCPMs = fl(MaxMs + 1) }, "fcp_ms"},
		{"lcp_ms negative", "browser_ok", func(r *Result) { r.Browser.LCPMs = fl(-1) }, "lcp_ms"},
		{"cls max", "browser_ok", func(r *Result) { r.Browser.CLS = fl(MaxCLS) }, ""},
		{"cls over", "browser_ok", func(r *Result) { r.Browser.CLS = fl(MaxCLS + 0.01) }, "cls"},
		{"cls negative", "browser_ok", func(r *Result) { r.Browser.CLS = fl(-0.01) }, "cls"},
		{"tbt_ms over", "browser_ok", func(r *Result) { r.Browser.TBTMs = fl(MaxMs + 1) }, "tbt_ms"},
		{"dom_content_loaded_ms negative", "browser_ok", func(r *Result) { r.Browser.DOMContentMs = fl(-1) }, "dom_content_loaded_ms"},
		{"load_ms over", "browser_ok", func(r *Result) { r.Browser.LoadMs = fl(MaxMs + 1) }, "load_ms"},
		{"resources max", "browser_ok", func(r *Result) { r.Browser.Resources = MaxCount32 }, ""},
		{"resources over", "browser_ok", func(r *Result) { r.Browser.Resources = MaxCount32 + 1 }, "resources"},
		{"resources negative", "browser_ok", func(r *Result) { r.Browser.Resources = -1 }, "resources"},
		{"page_bytes max", "browser_ok", func(r *Result) { r.Browser.PageBytes = math.MaxInt64 }, ""},
		{"page_bytes negative", "browser_ok", func(r *Result) { r.Browser.PageBytes = -1 }, "page_bytes"},
		{"console_errors max", "browser_ok", func(r *Result) { r.Browser.ConsoleErrors = MaxCount32 }, ""},
		{"console_errors over", "browser_ok", func(r *Result) { r.Browser.ConsoleErrors = MaxCount32 + 1 }, "console_errors"},
		{"host requests max", "browser_ok", func(r *Result) { r.Browser.Hosts[1].Requests = MaxCount32 }, ""},
		{"host requests over", "browser_ok", func(r *Result) { r.Browser.Hosts[1].Requests = MaxCount32 + 1 }, "browser_hosts[1].requests"},
		{"host requests negative", "browser_ok", func(r *Result) { r.Browser.Hosts[0].Requests = -1 }, "browser_hosts[0].requests"},
		{"host failed over", "browser_ok", func(r *Result) { r.Browser.Hosts[2].Failed = MaxCount32 + 1 }, "browser_hosts[2].failed"},
		{"host cache_hits negative", "browser_ok", func(r *Result) { r.Browser.Hosts[0].CacheHits = -1 }, "browser_hosts[0].cache_hits"},
		{"host bytes negative", "browser_ok", func(r *Result) { r.Browser.Hosts[3].Bytes = -1 }, "browser_hosts[3].bytes"},
		{"host max_ms 0", "browser_ok", func(r *Result) { r.Browser.Hosts[0].MaxMs = fl(0) }, ""},
		{"host max_ms -1 (the storage sentinel)", "browser_ok", func(r *Result) { r.Browser.Hosts[0].MaxMs = fl(-1) }, "browser_hosts[0].max_ms"},
		{"host max_ms over", "browser_ok", func(r *Result) { r.Browser.Hosts[0].MaxMs = fl(MaxMs + 1) }, "browser_hosts[0].max_ms"},
		// traceroute: UInt8 TTLs, UInt16 counts and port, ms and loss as ping's.
		{"trace_port max", "traceroute_ok", func(r *Result) { r.Traceroute.Port = MaxPort }, ""},
		{"trace_port over", "traceroute_ok", func(r *Result) { r.Traceroute.Port = MaxPort + 1 }, "trace_port"},
		{"hop ttl 255", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[3].TTL = MaxTTL }, ""},
		{"hop ttl 256", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[3].TTL = MaxTTL + 1 }, "trace_hops[3].ttl"},
		{"hop ttl 0", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[0].TTL = 0 }, "trace_hops[0].ttl"},
		{"hop sent over", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[1].Sent = MaxPingCount + 1 }, "trace_hops[1].sent"},
		{"hop received over sent", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[0].Received = 4 }, "trace_hops[0].received"},
		{"hop loss over", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[2].LossPct = 100.5 }, "trace_hops[2].loss_pct"},
		{"hop min_ms -1 (the storage sentinel)", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[0].MinMs = fl(-1) }, "trace_hops[0].min_ms"},
		{"hop stddev_ms over", "traceroute_ok", func(r *Result) { r.Traceroute.Hops[3].StddevMs = fl(MaxMs + 1) }, "trace_hops[3].stddev_ms"},
		{"hops 256", "traceroute_ok", func(r *Result) {
			r.Traceroute.Hops = make([]TraceHop, MaxTTL+1)
			for i := range r.Traceroute.Hops {
				r.Traceroute.Hops[i] = TraceHop{TTL: min(i+1, MaxTTL), Sent: 1}
			}
		}, "trace_hops"},
		// host.
		{"cpu_steal_pct 100", "http_ok", func(r *Result) { r.Host.CPUStealPct = fl(100) }, ""},
		{"cpu_steal_pct over", "http_ok", func(r *Result) { r.Host.CPUStealPct = fl(100.5) }, "cpu_steal_pct"},
		{"cpu_steal_pct negative", "http_ok", func(r *Result) { r.Host.CPUStealPct = fl(-0.5) }, "cpu_steal_pct"},
		{"clock_offset_ms min", "http_ok", func(r *Result) { r.Host.ClockOffsetMs = fl(-MaxClockOffsetMs) }, ""},
		{"clock_offset_ms over", "http_ok", func(r *Result) { r.Host.ClockOffsetMs = fl(MaxClockOffsetMs * 1.01) }, "clock_offset_ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := goldenResults()[tc.golden]
			tc.mutate(res)
			line, err := AppendNDJSON(nil, res)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeNDJSON(strings.NewReader(string(line)))
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused a value inside its range: %v", err)
				}
				if len(got) != 1 {
					t.Fatalf("got %d results, want 1", len(got))
				}
				if vErr := got[0].Validate(); vErr != nil {
					t.Fatalf("accepted result fails Validate: %v", vErr)
				}
				return
			}
			want := `line 1: field "` + tc.field + `": `
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("got %v, want an error starting %q", err, want)
			}
			if got != nil {
				t.Errorf("got %d results with an error", len(got))
			}
		})
	}
}

// JSON numbers cannot be NaN or infinite, but Validate also runs on values
// an agent computed (agent/ship filters with it): those must be refused too.
func TestRangesNotFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for field, set := range map[string]func(r *Result){
			"total_ms":        func(r *Result) { r.TotalMs = &v },
			"cert_days_left":  func(r *Result) { r.TLS.CertDaysLeft = &v },
			"clock_offset_ms": func(r *Result) { r.Host.ClockOffsetMs = &v },
			"throughput_bps":  func(r *Result) { r.HTTP.ThroughputBps = &v },
			"cpu_steal_pct":   func(r *Result) { r.Host.CPUStealPct = &v },
		} {
			res := goldenResults()["http_ok"]
			set(res)
			if err := res.Validate(); err == nil || !strings.HasPrefix(err.Error(), `field "`+field+`": `) {
				t.Errorf("%s = %v: got %v, want an error naming the field", field, v, err)
			}
		}
	}
}

// Types already bound ttl to UInt32: the decoder names the field.
func TestRangesTTLByType(t *testing.T) {
	good, _ := json.Marshal(goldenResults()["dns_nxdomain"])
	for _, v := range []string{"4294967296", "-1"} {
		body := strings.Replace(string(good), `"ttl":300`, `"ttl":`+v, 1)
		if _, err := DecodeNDJSON(strings.NewReader(body)); err == nil || !strings.HasPrefix(err.Error(), `line 1: field "ttl": `) {
			t.Errorf("ttl %s: got %v, want an error naming ttl", v, err)
		}
	}
	body := strings.Replace(string(good), `"ttl":300`, `"ttl":4294967295`, 1)
	if _, err := DecodeNDJSON(strings.NewReader(body)); err != nil {
		t.Errorf("ttl at UInt32 max: %v", err)
	}
}

// Invalid UTF-8 is refused, not stored as U+FFFD.
func TestInvalidUTF8Refused(t *testing.T) {
	good, _ := json.Marshal(goldenResults()["http_refused"])
	body := strings.Replace(string(good), `connection refused`, "connection \xffrefused", 1)
	if _, err := DecodeNDJSON(strings.NewReader(body)); err == nil || !strings.HasPrefix(err.Error(), "line 1: invalid UTF-8 at byte") {
		t.Errorf("got %v, want the line's invalid UTF-8 refused", err)
	}
}

// Validate reads no clock: an agent filters its batch with it whatever its
// own clock says, and the window is the collector's to apply.
func TestValidateHasNoClockWindow(t *testing.T) {
	res := goldenResults()["http_ok"]
	res.TS = time.Now().Add(100 * 24 * time.Hour)
	if err := res.Validate(); err != nil {
		t.Errorf("Validate refused a ts in column range: %v", err)
	}
	if err := res.CheckClock(time.Now()); err == nil || !strings.HasPrefix(err.Error(), `field "ts": `) {
		t.Errorf("CheckClock: got %v, want ts named", err)
	}
}

func TestStorableTime(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{MaxTS, true},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), false},
	} {
		if got := StorableTime(c.t); (got != nil) != c.want {
			t.Errorf("StorableTime(%v) = %v, want storable %v", c.t, got, c.want)
		}
	}
}
