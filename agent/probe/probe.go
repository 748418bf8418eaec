// Package probe owns how one check measures one target, one file per kind.
package probe

import (
	"context"
	"fmt"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// Check is one configured check: what to measure, how often and how.
// Only the options of the check's own kind are read.
type Check struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`
	Target   string        `yaml:"target"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`

	HTTP    HTTPOptions    `yaml:"http"`
	DNS     DNSOptions     `yaml:"dns"`
	TCP     TCPOptions     `yaml:"tcp"`
	TLS     TLSOptions     `yaml:"tls"`
	ICMP    ICMPOptions    `yaml:"icmp"`
	Browser BrowserOptions `yaml:"browser"`
	CDN     CDNOptions     `yaml:"cdn"`
}

// Func runs a check once. It returns one result per thing measured (one per
// redirect hop, one per CDN member, usually just one). A measurement that
// failed is a result with ok=false and an error class; an error means the
// probe could not run at all (for example an unparsable target). Every Func
// obeys ctx's deadline; the scheduler sets it from the check's timeout.
type Func func(ctx context.Context, c *Check) ([]*result.Result, error)

// Probes maps each kind to its probe. It is the one place kinds register.
var Probes = map[string]Func{
	result.KindHTTP:    HTTP,
	result.KindDNS:     DNS,
	result.KindTCP:     TCP,
	result.KindTLS:     TLS,
	result.KindBrowser: Browser,
	result.KindICMP:    ICMP,
	// KindCDN produces http results (one per member), so it is a check
	// kind but not a result kind.
	KindCDN: CDN,
}

// KindCDN is the kind of a cdn check: the same object through several CDNs.
const KindCDN = "cdn"

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
	for _, k := range append(append([]string(nil), result.Kinds...), KindCDN) {
		if _, ok := Probes[k]; ok {
			ks = append(ks, k)
		}
	}
	return ks
}
