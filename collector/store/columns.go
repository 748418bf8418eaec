package store

import (
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// Row is a result as stored: the result plus what the collector knows of
// its sender.
type Row struct {
	result.Result
	Region     string
	ReceivedAt time.Time
	// Replay says this row may be stored already: its sender sent it again,
	// or the collector inserts it again not knowing whether an earlier
	// insert landed. Stored as the replay column (migration 0050).
	Replay bool `json:",omitempty"`
	// HopASN and HopOrg are the AS number and organisation of each hop of
	// a traceroute (parallel to Traceroute.Hops; 0 and "" when unknown),
	// looked up by the collector: they are not in the wire contract.
	HopASN []uint32 `json:",omitempty"`
	HopOrg []string `json:",omitempty"`
}

// column maps one results-table column to its value in a Row. Keeping name
// and value side by side means the INSERT column list and the values can
// never drift apart.
type column struct {
	name  string
	value func(r *Row) any
}

func b2u(b *bool) *uint8 {
	if b == nil {
		return nil
	}
	var v uint8
	if *b {
		v = 1
	}
	return &v
}

func or[T any](p *T, get func(*T) any, zero any) any {
	if p == nil {
		return zero
	}
	return get(p)
}

var nilF64 *float64

// resultColumns are the results table's columns in the order of its
// CREATE (0002) and the migrations that added to it.
var resultColumns = append(append([]column(nil), coreColumns...), traceColumns...)

var coreColumns = []column{
	{"ts", func(r *Row) any { return second(r.TS) }},
	{"ts_ms", func(r *Row) any { return uint16(r.TS.Nanosecond() / 1e6) }},
	{"id", func(r *Row) any { return r.ID }},
	{"agent", func(r *Row) any { return r.Agent }},
	{"region", func(r *Row) any { return r.Region }},
	{"check_name", func(r *Row) any { return r.Check }},
	{"kind", func(r *Row) any { return r.Kind }},
	{"target", func(r *Row) any { return r.Target }},
	{"ok", func(r *Row) any { return *b2u(&r.OK) }},
	{"error", func(r *Row) any { return r.Error }},
	{"error_message", func(r *Row) any { return r.ErrorMessage }},

	{"dns_ms", func(r *Row) any { return r.DNSMs }},
	{"connect_ms", func(r *Row) any { return r.ConnectMs }},
	{"tls_ms", func(r *Row) any { return r.TLSMs }},
	{"ttfb_ms", func(r *Row) any { return r.TTFBMs }},
	{"transfer_ms", func(r *Row) any { return r.TransferMs }},
	{"total_ms", func(r *Row) any { return r.TotalMs }},

	{"url", httpField(func(h *result.HTTP) any { return h.URL }, "")},
	{"http_status", httpField(func(h *result.HTTP) any { return uint16(h.Status) }, uint16(0))},
	{"http_proto", httpField(func(h *result.HTTP) any { return h.Proto }, "")},
	{"http_bytes", httpField(func(h *result.HTTP) any { return h.Bytes }, (*int64)(nil))},
	{"remote_ip", httpField(func(h *result.HTTP) any { return h.RemoteIP }, "")},
	{"conn_reused", httpField(func(h *result.HTTP) any { return b2u(h.ConnReused) }, (*uint8)(nil))},
	{"dns_source", httpField(func(h *result.HTTP) any { return h.DNSSource }, "")},
	{"redirect_hop", httpField(func(h *result.HTTP) any { return uint8(min(h.Hop, 255)) }, uint8(0))},
	{"location", httpField(func(h *result.HTTP) any { return h.Location }, "")},
	{"cdn", httpField(func(h *result.HTTP) any { return h.CDN }, "")},
	{"cdn_member", httpField(func(h *result.HTTP) any { return h.CDNMember }, "")},
	{"cdn_pop", httpField(func(h *result.HTTP) any { return h.CDNPoP }, "")},
	{"cdn_cache", httpField(func(h *result.HTTP) any { return h.CDNCache }, "")},

	{"tls_version", tlsField(func(t *result.TLS) any { return t.TLSVersion }, "")},
	{"tls_cipher", tlsField(func(t *result.TLS) any { return t.TLSCipher }, "")},
	{"tls_alpn", tlsField(func(t *result.TLS) any { return t.TLSALPN }, "")},
	{"tls_sni", tlsField(func(t *result.TLS) any { return t.TLSSNI }, "")},
	{"cert_subject", tlsField(func(t *result.TLS) any { return t.CertSubject }, "")},
	{"cert_issuer", tlsField(func(t *result.TLS) any { return t.CertIssuer }, "")},
	{"cert_sans", tlsField(func(t *result.TLS) any { return nonNil(t.CertSANs) }, []string{})},
	{"cert_not_after", tlsField(func(t *result.TLS) any { return t.CertNotAfter }, (*time.Time)(nil))},
	{"cert_days_left", tlsField(func(t *result.TLS) any { return t.CertDaysLeft }, nilF64)},
	{"cert_sha256", tlsField(func(t *result.TLS) any { return t.CertSHA256 }, "")},
	{"ocsp_stapled", tlsField(func(t *result.TLS) any { return b2u(t.OCSPStapled) }, (*uint8)(nil))},
	{"trust_store", tlsField(func(t *result.TLS) any { return trust(t, func(c result.TrustCheck) string { return c.Store }) }, []string{})},
	{"trust_valid", tlsField(func(t *result.TLS) any {
		v := make([]uint8, len(t.Trust))
		for i, c := range t.Trust {
			v[i] = *b2u(&c.Valid)
		}
		return v
	}, []uint8{})},
	{"trust_error", tlsField(func(t *result.TLS) any { return trust(t, func(c result.TrustCheck) string { return c.Error }) }, []string{})},

	{"resolver", dnsField(func(d *result.DNS) any { return d.Resolver }, "")},
	{"qtype", dnsField(func(d *result.DNS) any { return d.QType }, "")},
	{"rcode", dnsField(func(d *result.DNS) any { return d.Rcode }, "")},
	{"answers", dnsField(func(d *result.DNS) any { return nonNil(d.Answers) }, []string{})},
	{"ttl", dnsField(func(d *result.DNS) any { return d.TTL }, (*uint32)(nil))},
	{"dns_transport", dnsField(func(d *result.DNS) any { return d.Transport }, "")},

	{"ping_sent", icmpField(func(p *result.ICMP) any { return uint16(p.Sent) }, uint16(0))},
	{"ping_received", icmpField(func(p *result.ICMP) any { return uint16(p.Received) }, uint16(0))},
	{"ping_dups", icmpField(func(p *result.ICMP) any { return uint16(p.Dups) }, uint16(0))},
	{"ping_loss_pct", icmpField(func(p *result.ICMP) any { return &p.LossPct }, nilF64)},
	{"ping_min_ms", icmpField(func(p *result.ICMP) any { return p.MinMs }, nilF64)},
	{"ping_avg_ms", icmpField(func(p *result.ICMP) any { return p.AvgMs }, nilF64)},
	{"ping_max_ms", icmpField(func(p *result.ICMP) any { return p.MaxMs }, nilF64)},
	{"ping_stddev_ms", icmpField(func(p *result.ICMP) any { return p.StddevMs }, nilF64)},

	{"fcp_ms", browserField(func(b *result.Browser) any { return b.FCPMs }, nilF64)},
	{"lcp_ms", browserField(func(b *result.Browser) any { return b.LCPMs }, nilF64)},
	{"cls", browserField(func(b *result.Browser) any { return b.CLS }, nilF64)},
	{"tbt_ms", browserField(func(b *result.Browser) any { return b.TBTMs }, nilF64)},
	{"dom_content_loaded_ms", browserField(func(b *result.Browser) any { return b.DOMContentMs }, nilF64)},
	{"load_ms", browserField(func(b *result.Browser) any { return b.LoadMs }, nilF64)},
	{"resources", browserField(func(b *result.Browser) any { return uint32(b.Resources) }, uint32(0))},
	{"page_bytes", browserField(func(b *result.Browser) any { return uint64(max(b.PageBytes, 0)) }, uint64(0))},
	{"console_errors", browserField(func(b *result.Browser) any { return uint32(b.ConsoleErrors) }, uint32(0))},
	{"bh_host", browserField(func(b *result.Browser) any { return hostsOf(b, func(h *result.BrowserHost) string { return h.Host }) }, []string{})},
	{"bh_cdn", browserField(func(b *result.Browser) any { return hostsOf(b, func(h *result.BrowserHost) string { return h.CDN }) }, []string{})},
	{"bh_cdn_pop", browserField(func(b *result.Browser) any { return hostsOf(b, func(h *result.BrowserHost) string { return h.CDNPoP }) }, []string{})},
	{"bh_requests", browserField(func(b *result.Browser) any {
		return hostsOf(b, func(h *result.BrowserHost) uint32 { return uint32(max(h.Requests, 0)) })
	}, []uint32{})},
	{"bh_failed", browserField(func(b *result.Browser) any {
		return hostsOf(b, func(h *result.BrowserHost) uint32 { return uint32(max(h.Failed, 0)) })
	}, []uint32{})},
	{"bh_cache_hits", browserField(func(b *result.Browser) any {
		return hostsOf(b, func(h *result.BrowserHost) uint32 { return uint32(max(h.CacheHits, 0)) })
	}, []uint32{})},
	{"bh_bytes", browserField(func(b *result.Browser) any {
		return hostsOf(b, func(h *result.BrowserHost) uint64 { return uint64(max(h.Bytes, 0)) })
	}, []uint64{})},
	{"bh_max_ms", browserField(func(b *result.Browser) any {
		return hostsOf(b, func(h *result.BrowserHost) float64 { // -1: absent (no Nullable in arrays)
			if h.MaxMs == nil {
				return -1
			}
			return *h.MaxMs
		})
	}, []float64{})},

	{"cpu_steal_pct", hostField(func(h *result.Host) any { return h.CPUStealPct }, nilF64)},
	{"clock_synced", hostField(func(h *result.Host) any { return b2u(h.ClockSynced) }, (*uint8)(nil))},
	{"clock_offset_ms", hostField(func(h *result.Host) any { return h.ClockOffsetMs }, nilF64)},

	{"received_at", func(r *Row) any { return second(r.ReceivedAt) }},
	{"replay", func(r *Row) any { return u8(r.Replay) }},
	{"throughput_bps", httpField(func(h *result.HTTP) any { return h.ThroughputBps }, nilF64)},
	{"alt_svc", httpField(func(h *result.HTTP) any { return h.AltSvc }, "")},
}

// traceColumns are a traceroute's path, after the columns above as
// migrations 0062-0076 appended them. hop_* are parallel arrays, one
// element per hop; hop_asn and hop_org come from the collector (Row).
var traceColumns = []column{
	{"trace_proto", traceField(func(t *result.Traceroute) any { return t.Proto }, "")},
	{"trace_port", traceField(func(t *result.Traceroute) any { return uint16(t.Port) }, uint16(0))},
	{"trace_reached", traceField(func(t *result.Traceroute) any { return *b2u(&t.Reached) }, uint8(0))},
	{"hop_ttl", hopField(func(h *result.TraceHop) uint8 { return uint8(h.TTL) })},
	{"hop_addr", hopField(func(h *result.TraceHop) string { return h.Addr })},
	{"hop_name", hopField(func(h *result.TraceHop) string { return h.Name })},
	{"hop_asn", func(r *Row) any { return hopsOf(r, r.HopASN) }},
	{"hop_org", func(r *Row) any { return hopsOf(r, r.HopOrg) }},
	{"hop_sent", hopField(func(h *result.TraceHop) uint16 { return uint16(h.Sent) })},
	{"hop_received", hopField(func(h *result.TraceHop) uint16 { return uint16(h.Received) })},
	{"hop_loss_pct", hopField(func(h *result.TraceHop) float64 { return h.LossPct })},
	{"hop_min_ms", hopField(func(h *result.TraceHop) float64 { return orMinus1(h.MinMs) })},
	{"hop_avg_ms", hopField(func(h *result.TraceHop) float64 { return orMinus1(h.AvgMs) })},
	{"hop_max_ms", hopField(func(h *result.TraceHop) float64 { return orMinus1(h.MaxMs) })},
	{"hop_stddev_ms", hopField(func(h *result.TraceHop) float64 { return orMinus1(h.StddevMs) })},
}

func traceField(get func(*result.Traceroute) any, zero any) func(*Row) any {
	return func(r *Row) any { return or(r.Traceroute, get, zero) }
}

// hopField is one field of every hop, as one of the hop_* arrays (never
// nil, so that rows of other kinds store empty arrays).
func hopField[T any](get func(*result.TraceHop) T) func(*Row) any {
	return func(r *Row) any {
		if r.Traceroute == nil {
			return []T{}
		}
		out := make([]T, len(r.Traceroute.Hops))
		for i := range r.Traceroute.Hops {
			out[i] = get(&r.Traceroute.Hops[i])
		}
		return out
	}
}

// hopsOf fits what the collector looked up per hop to the row's hops: one
// element per hop, zero where the lookup is missing, so the hop_* arrays
// always line up.
func hopsOf[T any](r *Row, looked []T) []T {
	n := 0
	if r.Traceroute != nil {
		n = len(r.Traceroute.Hops)
	}
	out := make([]T, n)
	copy(out, looked)
	return out
}

// orMinus1 is an optional time in an array column: -1 when absent (arrays
// cannot hold Nullable).
func orMinus1(v *float64) float64 {
	if v == nil {
		return -1
	}
	return *v
}

func httpField(get func(*result.HTTP) any, zero any) func(*Row) any {
	return func(r *Row) any { return or(r.HTTP, get, zero) }
}
func tlsField(get func(*result.TLS) any, zero any) func(*Row) any {
	return func(r *Row) any { return or(r.TLS, get, zero) }
}
func dnsField(get func(*result.DNS) any, zero any) func(*Row) any {
	return func(r *Row) any { return or(r.DNS, get, zero) }
}
func icmpField(get func(*result.ICMP) any, zero any) func(*Row) any {
	return func(r *Row) any { return or(r.ICMP, get, zero) }
}
func browserField(get func(*result.Browser) any, zero any) func(*Row) any {
	return func(r *Row) any { return or(r.Browser, get, zero) }
}
func hostField(get func(*result.Host) any, zero any) func(*Row) any {
	return func(r *Row) any { return or(r.Host, get, zero) }
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// hostsOf is one field of every host of a browser load, as one of the
// bh_* parallel arrays (never nil).
func hostsOf[T any](b *result.Browser, get func(*result.BrowserHost) T) []T {
	out := make([]T, len(b.Hosts))
	for i := range b.Hosts {
		out[i] = get(&b.Hosts[i])
	}
	return out
}

func trust(t *result.TLS, get func(result.TrustCheck) string) []string {
	out := make([]string, len(t.Trust))
	for i, c := range t.Trust {
		out[i] = get(c)
	}
	return out
}
