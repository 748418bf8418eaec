// Package probe owns how one check measures one target, one file per kind.
package probe

import (
	"context"
	"fmt"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// Check and the options of each kind are defined in internal/probe, with
// their validation, so the collector can validate checks without linking
// any probe; the probes here take them under their usual names.
type (
	Check          = checkdef.Check
	DialOptions    = checkdef.DialOptions
	HTTPOptions    = checkdef.HTTPOptions
	DNSOptions     = checkdef.DNSOptions
	TCPOptions     = checkdef.TCPOptions
	TLSOptions     = checkdef.TLSOptions
	ICMPOptions    = checkdef.ICMPOptions
	BrowserOptions = checkdef.BrowserOptions
	CDNOptions     = checkdef.CDNOptions
)

// Func runs a check once. It returns one result per thing measured (one per
// redirect hop, one per CDN member, usually just one). A measurement that
// failed is a result with ok=false and an error class; an error means the
// probe could not run at all (for example an unparsable target). Every Func
// obeys ctx's deadline; the scheduler sets it from the check's timeout.
type Func func(ctx context.Context, c *Check) ([]*result.Result, error)

// Probes maps each kind to its probe: the probes plug into the kinds
// internal/probe defines, under the same names.
var Probes = map[string]Func{
	result.KindHTTP:       HTTP,
	result.KindDNS:        DNS,
	result.KindTCP:        TCP,
	result.KindTLS:        TLS,
	result.KindBrowser:    Browser,
	result.KindICMP:       ICMP,
	result.KindTraceroute: Traceroute,
	// KindCDN produces http results (one per member), so it is a check
	// kind but not a result kind.
	KindCDN: CDN,
}

// KindCDN is the kind of a cdn check: the same object through several CDNs.
const KindCDN = checkdef.KindCDN

// Has reports whether this build has a probe for kind; config validation
// asks it (internal/probe's Check.Validate).
func Has(kind string) bool { return Probes[kind] != nil }

// Run runs c with the probe of its kind.
func Run(ctx context.Context, c *Check) ([]*result.Result, error) {
	f, ok := Probes[c.Kind]
	if !ok {
		return nil, fmt.Errorf("cannot run check %q: no probe for kind %q (have %v)", c.Name, c.Kind, kinds())
	}
	return f(ctx, c)
}

func kinds() []string {
	var ks []string
	for _, k := range checkdef.Kinds() {
		if _, ok := Probes[k]; ok {
			ks = append(ks, k)
		}
	}
	return ks
}
