package server

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/meridian-net/meridian/collector/store"
)

// This file is the beacon's validation: every value within its declared
// range (rum-js/BEACON.md, "Ranges"), errors naming the field.

// isPV tells whether s is a lowercase UUID (36 bytes, dashes at 8, 13, 18
// and 23).
func isPV(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// isSiteKey tells whether s looks like a key from `meridian sites add`.
func isSiteKey(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Bounds a value must stay within; the script stays far inside them.
// rum-js/BEACON.md ("Ranges") lists every field's range and column: a value
// the decoder takes is stored as sent, never clamped or wrapped.
const (
	maxMs        = 1e7 // ms, about 2.8 hours
	maxCLS       = 1000
	maxByteCount = 1<<53 - 1 // JavaScript's Number.MAX_SAFE_INTEGER; Int64 columns
	maxCount     = math.MaxUint32
	minStatus    = 100 // an HTTP status (UInt16 column)
	maxStatus    = 599
	maxURLBytes  = 4096 // 1024 UTF-16 units, at most 3 bytes each, with room
	maxHosts     = 20
	maxTimings   = 10
	maxProbes    = store.MaxCDNs
	maxNameBytes = 256
)

// field names a value of the beacon: name, or list[i].sub.name inside a
// list. It is spelled out only for an error, so valid beacons cost no
// string building.
type field struct {
	list string // "hosts", "server_timing", "cdn_probes"; "" at the top
	i    int
	sub  string // "cold", "warm" inside a probe
	name string
}

func (f field) String() string {
	s := f.name
	if f.sub != "" {
		s = f.sub + "." + s
	}
	if f.list != "" {
		s = fmt.Sprintf("%s[%d].%s", f.list, f.i, s)
	}
	return s
}

func top(name string) field { return field{name: name} }

// checker collects the first validation error with its field path.
type checker struct{ err error }

func (c *checker) fail(f field, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("field %s: %s", f, fmt.Sprintf(format, args...))
	}
}

func (c *checker) ms(f field, v *float64) {
	if v != nil && !(*v >= 0 && *v <= maxMs) {
		c.fail(f, "want milliseconds in [0, %g], got %v", float64(maxMs), *v)
	}
}

func (c *checker) bytes(f field, v *int64) {
	if v != nil && (*v < 0 || *v > maxByteCount) {
		c.fail(f, "want a byte count in [0, %d], got %d", int64(maxByteCount), *v)
	}
}

func (c *checker) str(f field, v string, required bool, max int) {
	switch {
	case required && v == "":
		c.fail(f, "missing")
	case len(v) > max:
		c.fail(f, "longer than %d bytes", max)
	case !utf8.ValidString(v):
		c.fail(f, "not valid UTF-8")
	}
}

func validateBeacon(b *store.Beacon) error {
	var c checker
	if b.V != 1 {
		c.fail(top("v"), "want 1 (format v1), got %d", b.V)
	}
	if !isSiteKey(b.Site) {
		c.fail(top("site"), "want the site key from `meridian sites add`, got %q", clipString(b.Site, 70))
	}
	if !isPV(b.PV) {
		c.fail(top("pv"), "want a lowercase UUID, got %q", clipString(b.PV, 40))
	}
	c.str(top("url"), b.URL, true, maxURLBytes)
	c.str(top("ref_host"), b.RefHost, false, maxNameBytes)
	if !(b.Sample > 0 && b.Sample <= 1) {
		c.fail(top("sample"), "want the sampling rate in (0, 1], got %v", b.Sample)
	}
	if n := b.Nav; n != nil {
		c.str(top("nav.type"), n.Type, false, 32)
		c.ms(top("nav.redirect_ms"), n.RedirectMs)
		c.ms(top("nav.dns_ms"), n.DNSMs)
		c.ms(top("nav.connect_ms"), n.ConnectMs)
		c.ms(top("nav.tls_ms"), n.TLSMs)
		c.ms(top("nav.ttfb_ms"), n.TTFBMs)
		c.ms(top("nav.response_ms"), n.ResponseMs)
		c.ms(top("nav.dom_interactive_ms"), n.DOMInteractiveMs)
		c.ms(top("nav.dom_complete_ms"), n.DOMCompleteMs)
		c.ms(top("nav.load_ms"), n.LoadMs)
		c.str(top("nav.protocol"), n.Protocol, false, 32)
		c.bytes(top("nav.transfer_bytes"), n.TransferBytes)
		if n.DeliveryType != nil {
			c.str(top("nav.delivery_type"), *n.DeliveryType, false, 32)
		}
	}
	if v := b.Vitals; v != nil {
		c.ms(top("vitals.fcp_ms"), v.FCPMs)
		c.ms(top("vitals.lcp_ms"), v.LCPMs)
		c.ms(top("vitals.inp_ms"), v.INPMs)
		c.ms(top("vitals.ttfb_ms"), v.TTFBMs)
		if v.CLS != nil && !(*v.CLS >= 0 && *v.CLS <= maxCLS) {
			c.fail(top("vitals.cls"), "want a layout shift score in [0, %d], got %v", maxCLS, *v.CLS)
		}
	}
	if cn := b.Conn; cn != nil {
		c.str(top("conn.effective_type"), cn.EffectiveType, false, 16)
		c.ms(top("conn.rtt_ms"), cn.RTTMs)
	}
	validateLists(&c, b)
	return c.err
}

func validateLists(c *checker, b *store.Beacon) {
	if len(b.ServerTiming) > maxTimings {
		c.fail(top("server_timing"), "at most %d metrics, got %d", maxTimings, len(b.ServerTiming))
	}
	for i, s := range b.ServerTiming {
		at := func(name string) field { return field{list: "server_timing", i: i, name: name} }
		c.str(at("name"), s.Name, true, maxNameBytes)
		c.str(at("desc"), s.Desc, false, 4*100)
		c.ms(at("dur"), s.Dur)
	}
	if len(b.Hosts) > maxHosts {
		c.fail(top("hosts"), "at most %d hosts, got %d", maxHosts, len(b.Hosts))
	}
	for i, h := range b.Hosts {
		at := func(name string) field { return field{list: "hosts", i: i, name: name} }
		c.str(at("host"), h.Host, true, maxNameBytes)
		c.str(at("cdn"), h.CDN, false, 64)
		if h.Count < 1 || h.Count > maxCount {
			c.fail(at("count"), "want a request count in [1, %d], got %d", int64(maxCount), h.Count)
		}
		if h.MedianMs == nil {
			c.fail(at("median_ms"), "missing")
		}
		c.ms(at("median_ms"), h.MedianMs)
		if h.Bytes == nil {
			c.fail(at("bytes"), "missing")
		}
		c.bytes(at("bytes"), h.Bytes)
		if h.TAO == nil {
			c.fail(at("tao"), "missing")
		}
	}
	if len(b.CDNProbes) > maxProbes {
		c.fail(top("cdn_probes"), "at most %d probes, got %d", maxProbes, len(b.CDNProbes))
	}
	for i, p := range b.CDNProbes {
		at := field{list: "cdn_probes", i: i}
		c.str(at.named("cdn"), p.CDN, true, 64)
		c.str(at.named("url"), p.URL, true, maxURLBytes)
		if p.Cold == nil {
			c.fail(at.named("cold"), "missing")
		}
		at.sub = "cold"
		validateFetch(c, at, p.Cold)
		at.sub = "warm"
		validateFetch(c, at, p.Warm)
	}
}

func (f field) named(name string) field { f.name = name; return f }

// validateFetch checks one probe fetch; at names the fetch (its sub).
func validateFetch(c *checker, at field, f *store.ProbeFetch) {
	if f == nil {
		return
	}
	whole := field{list: at.list, i: at.i, name: at.sub}
	timed := f.DNSMs != nil || f.ConnectMs != nil || f.TLSMs != nil || f.TTFBMs != nil || f.DurationMs != nil || f.Bytes != nil
	switch {
	case f.Error && timed:
		c.fail(whole, "holds both error and timings; want one or the other")
	case !f.Error && f.Status != 0:
		c.fail(at.named("status"), "only with error: true")
	case f.Error && f.Status != 0 && (f.Status < minStatus || f.Status > maxStatus):
		c.fail(at.named("status"), "want an HTTP status in [%d, %d], got %d", minStatus, maxStatus, f.Status)
	case !f.Error && f.DurationMs == nil:
		c.fail(at.named("duration_ms"), "missing")
	}
	c.ms(at.named("dns_ms"), f.DNSMs)
	c.ms(at.named("connect_ms"), f.ConnectMs)
	c.ms(at.named("tls_ms"), f.TLSMs)
	c.ms(at.named("ttfb_ms"), f.TTFBMs)
	c.ms(at.named("duration_ms"), f.DurationMs)
	c.bytes(at.named("bytes"), f.Bytes)
}

// clipString shortens s for an error message, marking the cut.
func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncate(s, n) + "…"
}
