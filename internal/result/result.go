// Package result owns the measurement record that agents send and the
// collector stores: the wire contract between the two sides.
package result

import (
	"fmt"
	"time"
)

// ReplayHeader, set to 1 on a POST of results, says they may have reached
// the collector before: an earlier post of them got no answer or an error,
// or an earlier run of the agent spooled them and may have posted them.
// The collector stores them marked replay = 1 (migration 0050), so queries
// count every result once without reading FINAL (query/rows.go).
const ReplayHeader = "Meridian-Replay"

// Version is the wire contract version carried in every result ("v").
// Additive, optional fields do not bump it; a renamed, removed or retyped
// field does, and the collector keeps accepting the previous version.
const Version = 1

// Kinds a result can have.
const (
	KindDNS        = "dns"
	KindTCP        = "tcp"
	KindTLS        = "tls"
	KindHTTP       = "http"
	KindICMP       = "icmp"
	KindBrowser    = "browser"
	KindTraceroute = "traceroute"
)

// Kinds lists every kind, in a stable order.
var Kinds = []string{KindDNS, KindTCP, KindTLS, KindHTTP, KindICMP, KindBrowser, KindTraceroute}

// KnownKind reports whether k is one of Kinds.
func KnownKind(k string) bool {
	for _, kind := range Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Result is one measurement of one target by one agent. Pointer fields are
// optional: absent means "did not happen or not known", never zero. A phase
// that did not run (no DNS because the target is an IP, no TLS on plain HTTP)
// is nil, so quantiles are never dragged down by fake zeros.
type Result struct {
	V      int       `json:"v"`
	ID     string    `json:"id"` // UUIDv7; the dedupe key across retries
	Agent  string    `json:"agent"`
	Check  string    `json:"check"`
	Kind   string    `json:"kind"`
	Target string    `json:"target"`
	TS     time.Time `json:"ts"` // when the measurement started
	OK     bool      `json:"ok"`

	// Error is a short stable class (see errclass.go); ErrorMessage says
	// what happened in words. Both are empty when OK.
	Error        string `json:"error,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`

	// Phase timings in milliseconds. Each phase is measured on its own (not
	// cumulative): TTFB runs from "connection ready" to the first response
	// byte, Transfer from the first to the last byte, Total from start to end.
	DNSMs      *float64 `json:"dns_ms,omitempty"`
	ConnectMs  *float64 `json:"connect_ms,omitempty"`
	TLSMs      *float64 `json:"tls_ms,omitempty"`
	TTFBMs     *float64 `json:"ttfb_ms,omitempty"`
	TransferMs *float64 `json:"transfer_ms,omitempty"`
	TotalMs    *float64 `json:"total_ms,omitempty"`

	*HTTP
	*TLS
	*DNS
	*ICMP
	*Browser
	*Traceroute
	*Host
}

// HTTP holds the fields of http results (and of each member of a cdn check).
type HTTP struct {
	URL        string `json:"url,omitempty"` // the URL fetched in this hop
	Status     int    `json:"http_status,omitempty"`
	Proto      string `json:"http_proto,omitempty"` // HTTP/1.1, HTTP/2.0
	Bytes      *int64 `json:"http_bytes,omitempty"` // body bytes read
	RemoteIP   string `json:"remote_ip,omitempty"`
	ConnReused *bool  `json:"conn_reused,omitempty"`
	// DNSSource says where the address came from: "resolver" (the agent
	// asked), "ip" (the target was an address), "cache" (reused connection).
	DNSSource string `json:"dns_source,omitempty"`
	Hop       int    `json:"redirect_hop,omitempty"` // 0 for the first request
	Location  string `json:"location,omitempty"`     // redirect target, if any
	CDN       string `json:"cdn,omitempty"`          // vendor, from response headers
	CDNMember string `json:"cdn_member,omitempty"`   // the cdn check member fetched
	CDNPoP    string `json:"cdn_pop,omitempty"`
	CDNCache  string `json:"cdn_cache,omitempty"` // hit, miss, …
	// ThroughputBps is bits per second over the body transfer only (first
	// to last body byte), so connection set-up and server think time do
	// not dilute it. Set for bodies over the check's size threshold.
	ThroughputBps *float64 `json:"throughput_bps,omitempty"`
	// AltSvc is the Alt-Svc header an h1/h2 response advertised (how a
	// client discovers HTTP/3), as sent.
	AltSvc string `json:"alt_svc,omitempty"`
}

// TLS holds what the handshake showed: the negotiated parameters and the
// certificate this agent (region) was served.
type TLS struct {
	TLSVersion   string       `json:"tls_version,omitempty"`
	TLSCipher    string       `json:"tls_cipher,omitempty"`
	TLSALPN      string       `json:"tls_alpn,omitempty"`
	TLSSNI       string       `json:"tls_sni,omitempty"`
	CertSubject  string       `json:"cert_subject,omitempty"`
	CertIssuer   string       `json:"cert_issuer,omitempty"`
	CertSANs     []string     `json:"cert_sans,omitempty"`
	CertNotAfter *time.Time   `json:"cert_not_after,omitempty"`
	CertDaysLeft *float64     `json:"cert_days_left,omitempty"`
	CertSHA256   string       `json:"cert_sha256,omitempty"` // leaf fingerprint, hex
	OCSPStapled  *bool        `json:"ocsp_stapled,omitempty"`
	Trust        []TrustCheck `json:"trust,omitempty"`
}

// TrustCheck says whether the served chain validates against one trust store.
type TrustCheck struct {
	Store string `json:"store"` // "system" or the bundle's name
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"` // error class when not valid
}

// DNS holds the fields of dns results.
type DNS struct {
	Resolver  string   `json:"resolver,omitempty"`
	QType     string   `json:"qtype,omitempty"`
	Rcode     string   `json:"rcode,omitempty"`
	Answers   []string `json:"answers,omitempty"`
	TTL       *uint32  `json:"ttl,omitempty"` // smallest TTL among answers
	Transport string   `json:"transport,omitempty"`
}

// ICMP holds the fields of icmp results: several echoes per run.
type ICMP struct {
	Sent     int      `json:"ping_sent"`
	Received int      `json:"ping_received"`
	Dups     int      `json:"ping_dups,omitempty"`
	LossPct  float64  `json:"ping_loss_pct"`
	MinMs    *float64 `json:"ping_min_ms,omitempty"`
	AvgMs    *float64 `json:"ping_avg_ms,omitempty"`
	MaxMs    *float64 `json:"ping_max_ms,omitempty"`
	StddevMs *float64 `json:"ping_stddev_ms,omitempty"`
}

// Browser holds the fields of a real page load.
type Browser struct {
	FCPMs         *float64 `json:"fcp_ms,omitempty"`
	LCPMs         *float64 `json:"lcp_ms,omitempty"`
	CLS           *float64 `json:"cls,omitempty"`
	TBTMs         *float64 `json:"tbt_ms,omitempty"`
	DOMContentMs  *float64 `json:"dom_content_loaded_ms,omitempty"`
	LoadMs        *float64 `json:"load_ms,omitempty"`
	Resources     int      `json:"resources,omitempty"`
	PageBytes     int64    `json:"page_bytes,omitempty"`
	ConsoleErrors int      `json:"console_errors,omitempty"`
	// Hosts breaks the page load down per host: most bytes first, at most
	// 20 hosts and then one "(other)" entry for the rest.
	Hosts []BrowserHost `json:"browser_hosts,omitempty"`
}

// BrowserHost is one host's share of a page load.
type BrowserHost struct {
	Host      string   `json:"host"`          // host[:port]
	CDN       string   `json:"cdn,omitempty"` // vendor from response headers
	CDNPoP    string   `json:"cdn_pop,omitempty"`
	Requests  int      `json:"requests"`
	Failed    int      `json:"failed,omitempty"`
	CacheHits int      `json:"cache_hits,omitempty"`
	Bytes     int64    `json:"bytes"`            // on the wire
	MaxMs     *float64 `json:"max_ms,omitempty"` // slowest request
}

// Traceroute holds the path a traceroute result found: one entry per TTL
// probed, in TTL order, MTR-style (several probes per TTL). The address
// traced to is remote_ip. ASN and organisation of each hop are not part
// of the contract: the collector looks them up itself (an agent's word on
// whose network an address is in is not to be trusted).
type Traceroute struct {
	Proto   string     `json:"trace_proto"`          // icmp, udp or tcp
	Port    int        `json:"trace_port,omitempty"` // udp and tcp: destination port
	Reached bool       `json:"trace_reached"`        // the destination answered
	Hops    []TraceHop `json:"trace_hops"`
}

// TraceHop is what the probes sent with one TTL found. A hop no probe got
// an answer from has no address and no times (mtr's "???"). When several
// addresses answered for one TTL (a path change, per-packet balancing),
// Addr is the one that answered most.
type TraceHop struct {
	TTL      int      `json:"ttl"`
	Addr     string   `json:"addr,omitempty"`
	Name     string   `json:"name,omitempty"` // reverse DNS, when the check asks
	Sent     int      `json:"sent"`
	Received int      `json:"received"`
	LossPct  float64  `json:"loss_pct"`
	MinMs    *float64 `json:"min_ms,omitempty"`
	AvgMs    *float64 `json:"avg_ms,omitempty"`
	MaxMs    *float64 `json:"max_ms,omitempty"`
	StddevMs *float64 `json:"stddev_ms,omitempty"`
}

// Host describes how noisy the agent's host was when it measured.
type Host struct {
	CPUStealPct   *float64 `json:"cpu_steal_pct,omitempty"`
	ClockSynced   *bool    `json:"clock_synced,omitempty"`
	ClockOffsetMs *float64 `json:"clock_offset_ms,omitempty"`
}

// Ms converts a duration to the float milliseconds the contract uses.
func Ms(d time.Duration) *float64 {
	v := float64(d.Nanoseconds()) / 1e6
	return &v
}

// Validate checks what the collector needs from every result, including the
// declared range of every numeric and time field (ranges.go, RANGES.md). It
// names the offending field so a rejected batch says exactly what to fix. It
// reads no clock: the decoders add CheckClock.
func (r *Result) Validate() error {
	switch {
	case r.V != Version:
		return fmt.Errorf("field \"v\": unsupported contract version %d (this build speaks %d)", r.V, Version)
	case !validUUID(r.ID):
		return fmt.Errorf("field \"id\": %q is not a UUID", r.ID)
	case r.Check == "":
		return fmt.Errorf("field \"check\": must not be empty")
	case !KnownKind(r.Kind):
		return fmt.Errorf("field \"kind\": unknown kind %q (want one of %v)", r.Kind, Kinds)
	case r.Target == "":
		return fmt.Errorf("field \"target\": must not be empty")
	case r.TS.IsZero():
		return fmt.Errorf("field \"ts\": must be set (RFC 3339)")
	case r.OK && r.Error != "":
		return fmt.Errorf("field \"error\": set on a result with ok=true")
	case !r.OK && r.Error == "":
		return fmt.Errorf("field \"error\": an error class is required when ok=false")
	}
	if err := r.checkRanges(); err != nil {
		return err
	}
	return nil
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
