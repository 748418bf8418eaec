package result

import (
	"fmt"
	"math"
	"time"
)

// Declared ranges of the results v1 contract (RANGES.md lists every field
// and the column it lands in). Every value the decoder accepts fits its
// ClickHouse column as is: nothing is ever stored clamped or wrapped.
var (
	// MinTS and MaxTS bound every timestamp (ts, cert_not_after): the range
	// of a ClickHouse DateTime (UInt32 seconds since the epoch). A ts in
	// 2200 would otherwise be stored as 2036, one in 1900 as 2063.
	MinTS = time.Unix(0, 0).UTC()
	MaxTS = time.Unix(math.MaxUint32, 999999999).UTC() // 2106-02-07T06:28:15.999999999Z
)

const (
	// MaxFutureSkew is how far ahead of the decoder's clock (the
	// collector's) a ts may be. A clock further ahead is not a skew but a
	// broken clock: its rows would sit in partitions retention never drops
	// and no recent-window query ever shows. There is no bound into the
	// past beyond MinTS: agents spool for as long as the collector is away,
	// and retention, not the decoder, ages old rows out.
	MaxFutureSkew = 24 * time.Hour

	// MaxMs bounds every duration in milliseconds: one hour. No probe runs
	// that long (agent timeouts are seconds); a larger value is a unit or
	// clock bug, not a measurement.
	MaxMs = 3.6e6
	// MaxCLS bounds the Cumulative Layout Shift score (as the beacon does).
	MaxCLS = 1000
	// MaxCertDaysLeft bounds |cert_days_left|: 10 000 years, so that a
	// certificate valid until 9999-12-31 (RFC 5280's "no expiry") fits.
	MaxCertDaysLeft = 3.66e6
	// MaxClockOffsetMs bounds |clock_offset_ms|: the whole DateTime span.
	MaxClockOffsetMs = float64(math.MaxUint32) * 1000
	// MinHTTPStatus and MaxHTTPStatus bound http_status when present (0 is
	// absent: no response).
	MinHTTPStatus = 100
	MaxHTTPStatus = 599
	// MaxThroughputBps bounds throughput_bps: 1 Tbit/s. No single HTTP
	// transfer an agent measures comes near it; more is a unit bug or a
	// body too small to time.
	MaxThroughputBps = 1e12
	// MaxRedirectHop is the largest redirect_hop (UInt8 column).
	MaxRedirectHop = math.MaxUint8
	// MaxPingCount bounds ping_sent, ping_received, ping_dups (UInt16).
	MaxPingCount = math.MaxUint16
	// MaxTTL bounds a hop's ttl (UInt8 column; the IPv4 TTL and IPv6 hop
	// limit are one byte) and so the number of hops of a traceroute.
	MaxTTL = math.MaxUint8
	// MaxPort bounds trace_port (UInt16).
	MaxPort = math.MaxUint16
	// MaxCount32 bounds resources, console_errors and the per-host
	// requests, failed and cache_hits (UInt32 columns).
	MaxCount32 = math.MaxUint32
)

// rangeCheck collects the first out-of-range field, named as the decoder
// names fields.
type rangeCheck struct{ err error }

func (c *rangeCheck) fail(field, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("field %q: %s", field, fmt.Sprintf(format, args...))
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// between checks lo ≤ v ≤ hi for a float (and that it is a number).
func (c *rangeCheck) between(field string, v, lo, hi float64, what string) {
	if !finite(v) || v < lo || v > hi {
		c.fail(field, "%v is out of range: want %s in [%g, %g]", v, what, lo, hi)
	}
}

func (c *rangeCheck) ms(field string, v *float64) {
	if v != nil {
		c.between(field, *v, 0, MaxMs, "milliseconds")
	}
}

func (c *rangeCheck) count(field string, v, hi int64) {
	if v < 0 || v > hi {
		c.fail(field, "%d is out of range: want an integer in [0, %d]", v, hi)
	}
}

func (c *rangeCheck) time(field string, t time.Time) {
	if t.Before(MinTS) || t.After(MaxTS) {
		c.fail(field, "%s is out of range: want a time in [%s, %s] (ClickHouse DateTime)",
			t.Format(time.RFC3339Nano), MinTS.Format(time.RFC3339), MaxTS.Truncate(time.Second).Format(time.RFC3339))
	}
}

// checkRanges enforces the declared range of every numeric and time field.
// It does not look at a clock; CheckClock does.
func (r *Result) checkRanges() error {
	var c rangeCheck
	c.time("ts", r.TS)
	c.ms("dns_ms", r.DNSMs)
	c.ms("connect_ms", r.ConnectMs)
	c.ms("tls_ms", r.TLSMs)
	c.ms("ttfb_ms", r.TTFBMs)
	c.ms("transfer_ms", r.TransferMs)
	c.ms("total_ms", r.TotalMs)
	if h := r.HTTP; h != nil {
		if h.Status != 0 && (h.Status < MinHTTPStatus || h.Status > MaxHTTPStatus) {
			c.fail("http_status", "%d is out of range: want an HTTP status in [%d, %d] (or absent)", h.Status, MinHTTPStatus, MaxHTTPStatus)
		}
		if h.Bytes != nil {
			c.count("http_bytes", *h.Bytes, math.MaxInt64)
		}
		c.count("redirect_hop", int64(h.Hop), MaxRedirectHop)
		if h.ThroughputBps != nil {
			c.between("throughput_bps", *h.ThroughputBps, 0, MaxThroughputBps, "bits per second")
		}
	}
	if t := r.TLS; t != nil {
		if t.CertNotAfter != nil {
			c.time("cert_not_after", *t.CertNotAfter)
		}
		if t.CertDaysLeft != nil {
			c.between("cert_days_left", *t.CertDaysLeft, -MaxCertDaysLeft, MaxCertDaysLeft, "days")
		}
	}
	// dns: ttl is a uint32 in Go, so the JSON decoder already refuses
	// anything outside UInt32 and names the field.
	if p := r.ICMP; p != nil {
		c.count("ping_sent", int64(p.Sent), MaxPingCount)
		c.count("ping_received", int64(p.Received), MaxPingCount)
		c.count("ping_dups", int64(p.Dups), MaxPingCount)
		c.between("ping_loss_pct", p.LossPct, 0, 100, "a percentage")
		c.ms("ping_min_ms", p.MinMs)
		c.ms("ping_avg_ms", p.AvgMs)
		c.ms("ping_max_ms", p.MaxMs)
		c.ms("ping_stddev_ms", p.StddevMs)
	}
	if b := r.Browser; b != nil {
		c.ms("fcp_ms", b.FCPMs)
		c.ms("lcp_ms", b.LCPMs)
		if b.CLS != nil {
			c.between("cls", *b.CLS, 0, MaxCLS, "a layout shift score")
		}
		c.ms("tbt_ms", b.TBTMs)
		c.ms("dom_content_loaded_ms", b.DOMContentMs)
		c.ms("load_ms", b.LoadMs)
		c.count("resources", int64(b.Resources), MaxCount32)
		c.count("page_bytes", b.PageBytes, math.MaxInt64)
		c.count("console_errors", int64(b.ConsoleErrors), MaxCount32)
		for i := range b.Hosts {
			h := &b.Hosts[i]
			at := func(name string) string { return fmt.Sprintf("browser_hosts[%d].%s", i, name) }
			c.count(at("requests"), int64(h.Requests), MaxCount32)
			c.count(at("failed"), int64(h.Failed), MaxCount32)
			c.count(at("cache_hits"), int64(h.CacheHits), MaxCount32)
			c.count(at("bytes"), h.Bytes, math.MaxInt64)
			c.ms(at("max_ms"), h.MaxMs)
		}
	}
	if t := r.Traceroute; t != nil {
		c.traceroute(t)
	}
	if h := r.Host; h != nil {
		if h.CPUStealPct != nil {
			c.between("cpu_steal_pct", *h.CPUStealPct, 0, 100, "a percentage")
		}
		if h.ClockOffsetMs != nil {
			c.between("clock_offset_ms", *h.ClockOffsetMs, -MaxClockOffsetMs, MaxClockOffsetMs, "milliseconds")
		}
	}
	return c.err
}

// traceroute checks a path: counts fit their UInt8/UInt16 columns, times
// and loss as ping's, and -1 (the hop arrays' "absent") never collides.
func (c *rangeCheck) traceroute(t *Traceroute) {
	c.count("trace_port", int64(t.Port), MaxPort)
	if len(t.Hops) > MaxTTL {
		c.fail("trace_hops", "%d hops is out of range: want at most %d (one per TTL)", len(t.Hops), MaxTTL)
	}
	for i := range t.Hops {
		h := &t.Hops[i]
		at := func(name string) string { return fmt.Sprintf("trace_hops[%d].%s", i, name) }
		if h.TTL < 1 || h.TTL > MaxTTL {
			c.fail(at("ttl"), "%d is out of range: want a TTL in [1, %d]", h.TTL, MaxTTL)
		}
		c.count(at("sent"), int64(h.Sent), MaxPingCount)
		c.count(at("received"), int64(h.Received), int64(h.Sent))
		c.between(at("loss_pct"), h.LossPct, 0, 100, "a percentage")
		c.ms(at("min_ms"), h.MinMs)
		c.ms(at("avg_ms"), h.AvgMs)
		c.ms(at("max_ms"), h.MaxMs)
		c.ms(at("stddev_ms"), h.StddevMs)
	}
}

// CheckClock refuses a ts more than MaxFutureSkew ahead of now (the
// decoder's clock). A ts behind now is never refused here: it may come
// from an agent's spool.
func (r *Result) CheckClock(now time.Time) error {
	if limit := now.Add(MaxFutureSkew); r.TS.After(limit) {
		return fmt.Errorf("field %q: %s is %s ahead of the collector's clock (%s); want at most %s ahead: check the agent's clock",
			"ts", r.TS.Format(time.RFC3339Nano), r.TS.Sub(now).Round(time.Second), now.UTC().Format(time.RFC3339), MaxFutureSkew)
	}
	return nil
}

// StorableTime returns t (UTC) when a DateTime column can hold it, else
// nil: a probe leaves out a certificate expiry past 2106 (self-signed ones
// say 9999-12-31) and keeps its days left, which fits.
func StorableTime(t time.Time) *time.Time {
	if t.Before(MinTS) || t.After(MaxTS) {
		return nil
	}
	t = t.UTC()
	return &t
}
