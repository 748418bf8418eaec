package store

import (
	"strconv"
	"strings"
	"unsafe"

	jsonv2 "github.com/go-json-experiment/json"
)

// UnmarshalBeacon decodes a beacon's JSON strictly into b: one object, no
// unknown or repeated members, valid UTF-8; its error is
// go-json-experiment/json's, for the caller to word. Ranges are the
// caller's to check.
func UnmarshalBeacon(raw []byte, b *Beacon) error {
	if fastBeacon(raw, b) {
		return nil
	}
	*b = Beacon{}
	return jsonv2.Unmarshal(raw, b, jsonv2.RejectUnknownMembers(true))
}

// fastBeacon is the fast path: whether it decoded raw into b.
func fastBeacon(raw []byte, b *Beacon) bool {
	d := jsonScan{s: view(raw)}
	if !d.beacon(b) || !d.end() {
		return false
	}
	ownStrings(b, nil)
	return true
}

// view is raw as a string without a copy, for the scanner alone: what it
// decodes points into it only until ownStrings.
func view(raw []byte) string { return unsafe.String(unsafe.SliceData(raw), len(raw)) }

// ownStrings moves the strings of b and v (either may be nil) into one
// allocation of their own. The scanner points them into its input, which is
// the caller's: reused, or far larger than they are (a queued beacon would
// hold its whole body, a row read back its whole segment).
func ownStrings(b *Beacon, v *Visitor) {
	n := 0
	eachString(b, v, func(s *string) { n += len(*s) })
	var sb strings.Builder
	sb.Grow(n)
	eachString(b, v, func(s *string) { sb.WriteString(*s) })
	all, off := sb.String(), 0
	eachString(b, v, func(s *string) {
		m := len(*s)
		*s = all[off : off+m]
		off += m
	})
}

// eachString hands f every string of b and v (TestOwnStrings holds it to
// the types).
func eachString(b *Beacon, v *Visitor, f func(*string)) {
	if v != nil {
		for _, s := range [...]*string{&v.Country, &v.Region, &v.City, &v.ASOrg, &v.Browser, &v.BrowserVersion, &v.OS, &v.Device} {
			f(s)
		}
	}
	if b == nil {
		return
	}
	f(&b.Site)
	f(&b.PV)
	f(&b.URL)
	f(&b.RefHost)
	if n := b.Nav; n != nil {
		f(&n.Type)
		f(&n.Protocol)
		if n.DeliveryType != nil {
			f(n.DeliveryType)
		}
	}
	if c := b.Conn; c != nil {
		f(&c.EffectiveType)
	}
	for i := range b.ServerTiming {
		f(&b.ServerTiming[i].Name)
		f(&b.ServerTiming[i].Desc)
	}
	for i := range b.Hosts {
		f(&b.Hosts[i].Host)
		f(&b.Hosts[i].CDN)
	}
	for i := range b.CDNProbes {
		f(&b.CDNProbes[i].CDN)
		f(&b.CDNProbes[i].URL)
	}
}

// How many list entries the fast path takes; a beacon with more is valid
// for no site (rum-js/BEACON.md) and goes to the general decoder.
const (
	fastTimings = 10
	fastHosts   = 20
	fastProbes  = MaxCDNs
)

func (d *jsonScan) beacon(b *Beacon) bool {
	var seen uint64
	return d.object(func(name string) bool {
		var ok bool
		switch name {
		case "v":
			var v int64
			v, ok = d.integer(strconv.IntSize)
			b.V = int(v)
			return ok && once(&seen, 0)
		case "site":
			b.Site, ok = d.str()
			return ok && once(&seen, 1)
		case "pv":
			b.PV, ok = d.str()
			return ok && once(&seen, 2)
		case "url":
			b.URL, ok = d.str()
			return ok && once(&seen, 3)
		case "ref_host":
			b.RefHost, ok = d.str()
			return ok && once(&seen, 4)
		case "sample":
			b.Sample, ok = d.float()
			return ok && once(&seen, 5)
		case "webdriver":
			b.Webdriver, ok = d.boolean()
			return ok && once(&seen, 6)
		case "nav":
			b.Nav = &d.parts().nav
			return d.nav(b.Nav) && once(&seen, 7)
		case "vitals":
			b.Vitals = &d.parts().vitals
			return d.vitals(b.Vitals) && once(&seen, 8)
		case "conn":
			b.Conn = &d.parts().conn
			return d.conn(b.Conn) && once(&seen, 9)
		case "server_timing":
			return d.serverTiming(b) && once(&seen, 10)
		case "hosts":
			return d.hosts(b) && once(&seen, 11)
		case "cdn_probes":
			return d.probes(b) && once(&seen, 12)
		}
		return false
	})
}

func (d *jsonScan) nav(n *BeaconNav) bool {
	var seen uint64
	return d.object(func(name string) bool {
		var ok bool
		switch name {
		case "type":
			n.Type, ok = d.str()
			return ok && once(&seen, 0)
		case "redirect_ms":
			return d.optFloat(&n.RedirectMs) && once(&seen, 1)
		case "dns_ms":
			return d.optFloat(&n.DNSMs) && once(&seen, 2)
		case "connect_ms":
			return d.optFloat(&n.ConnectMs) && once(&seen, 3)
		case "tls_ms":
			return d.optFloat(&n.TLSMs) && once(&seen, 4)
		case "ttfb_ms":
			return d.optFloat(&n.TTFBMs) && once(&seen, 5)
		case "response_ms":
			return d.optFloat(&n.ResponseMs) && once(&seen, 6)
		case "dom_interactive_ms":
			return d.optFloat(&n.DOMInteractiveMs) && once(&seen, 7)
		case "dom_complete_ms":
			return d.optFloat(&n.DOMCompleteMs) && once(&seen, 8)
		case "load_ms":
			return d.optFloat(&n.LoadMs) && once(&seen, 9)
		case "protocol":
			n.Protocol, ok = d.str()
			return ok && once(&seen, 10)
		case "transfer_bytes":
			return d.optInt(&n.TransferBytes) && once(&seen, 11)
		case "delivery_type":
			p := d.parts()
			p.str, ok = d.str()
			n.DeliveryType = &p.str
			return ok && once(&seen, 12)
		}
		return false
	})
}

func (d *jsonScan) vitals(v *BeaconVitals) bool {
	var seen uint64
	return d.object(func(name string) bool {
		switch name {
		case "fcp_ms":
			return d.optFloat(&v.FCPMs) && once(&seen, 0)
		case "lcp_ms":
			return d.optFloat(&v.LCPMs) && once(&seen, 1)
		case "inp_ms":
			return d.optFloat(&v.INPMs) && once(&seen, 2)
		case "cls":
			return d.optFloat(&v.CLS) && once(&seen, 3)
		case "ttfb_ms":
			return d.optFloat(&v.TTFBMs) && once(&seen, 4)
		}
		return false
	})
}

func (d *jsonScan) conn(c *BeaconConn) bool {
	var seen uint64
	return d.object(func(name string) bool {
		var ok bool
		switch name {
		case "effective_type":
			c.EffectiveType, ok = d.str()
			return ok && once(&seen, 0)
		case "rtt_ms":
			return d.optFloat(&c.RTTMs) && once(&seen, 1)
		}
		return false
	})
}

// The lists are read into arrays on the stack and copied once into a
// slice of their length (never nil, as the general decoder makes it).

func (d *jsonScan) serverTiming(b *Beacon) bool {
	var buf [fastTimings]ServerTiming
	n := 0
	ok := d.array(func() bool {
		if n == len(buf) {
			return false
		}
		s := &buf[n]
		n++
		var seen uint64
		return d.object(func(name string) bool {
			var ok bool
			switch name {
			case "name":
				s.Name, ok = d.str()
				return ok && once(&seen, 0)
			case "dur":
				return d.optFloat(&s.Dur) && once(&seen, 1)
			case "desc":
				s.Desc, ok = d.str()
				return ok && once(&seen, 2)
			}
			return false
		})
	})
	b.ServerTiming = append(make([]ServerTiming, 0, n), buf[:n]...)
	return ok
}

func (d *jsonScan) hosts(b *Beacon) bool {
	var buf [fastHosts]BeaconHost
	n := 0
	ok := d.array(func() bool {
		if n == len(buf) {
			return false
		}
		h := &buf[n]
		n++
		var seen uint64
		return d.object(func(name string) bool {
			var ok bool
			switch name {
			case "host":
				h.Host, ok = d.str()
				return ok && once(&seen, 0)
			case "cdn":
				h.CDN, ok = d.str()
				return ok && once(&seen, 1)
			case "count":
				h.Count, ok = d.integer(64)
				return ok && once(&seen, 2)
			case "median_ms":
				return d.optFloat(&h.MedianMs) && once(&seen, 3)
			case "bytes":
				return d.optInt(&h.Bytes) && once(&seen, 4)
			case "tao":
				return d.optBool(&h.TAO) && once(&seen, 5)
			}
			return false
		})
	})
	b.Hosts = append(make([]BeaconHost, 0, n), buf[:n]...)
	return ok
}

func (d *jsonScan) probes(b *Beacon) bool {
	var buf [fastProbes]CDNProbe
	n := 0
	ok := d.array(func() bool {
		if n == len(buf) {
			return false
		}
		p := &buf[n]
		n++
		var seen uint64
		return d.object(func(name string) bool {
			var ok bool
			switch name {
			case "cdn":
				p.CDN, ok = d.str()
				return ok && once(&seen, 0)
			case "url":
				p.URL, ok = d.str()
				return ok && once(&seen, 1)
			case "cold":
				p.Cold = d.fetch()
				return d.probeFetch(p.Cold) && once(&seen, 2)
			case "warm":
				p.Warm = d.fetch()
				return d.probeFetch(p.Warm) && once(&seen, 3)
			}
			return false
		})
	})
	b.CDNProbes = append(make([]CDNProbe, 0, n), buf[:n]...)
	return ok
}

func (d *jsonScan) probeFetch(f *ProbeFetch) bool {
	var seen uint64
	return d.object(func(name string) bool {
		var ok bool
		switch name {
		case "dns_ms":
			return d.optFloat(&f.DNSMs) && once(&seen, 0)
		case "connect_ms":
			return d.optFloat(&f.ConnectMs) && once(&seen, 1)
		case "tls_ms":
			return d.optFloat(&f.TLSMs) && once(&seen, 2)
		case "ttfb_ms":
			return d.optFloat(&f.TTFBMs) && once(&seen, 3)
		case "duration_ms":
			return d.optFloat(&f.DurationMs) && once(&seen, 4)
		case "bytes":
			return d.optInt(&f.Bytes) && once(&seen, 5)
		case "error":
			f.Error, ok = d.boolean()
			return ok && once(&seen, 6)
		case "status":
			var v int64
			v, ok = d.integer(strconv.IntSize)
			f.Status = int(v)
			return ok && once(&seen, 7)
		}
		return false
	})
}
