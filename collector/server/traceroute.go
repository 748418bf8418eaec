package server

import (
	"net/netip"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/store"
)

// hopNetworks fills a traceroute row's per-hop AS number and organisation
// from the collector's ASN database, so a stored path says which networks
// it crossed. The wire contract has no such fields: which network an
// address belongs to is the collector's call, not an agent's.
func hopNetworks(e *enrich.Enricher, row *store.Row) {
	if row.Traceroute == nil || len(row.Traceroute.Hops) == 0 {
		return
	}
	hops := row.Traceroute.Hops
	row.HopASN, row.HopOrg = make([]uint32, len(hops)), make([]string, len(hops))
	for i, h := range hops {
		if a, err := netip.ParseAddr(h.Addr); err == nil {
			row.HopASN[i], row.HopOrg[i] = e.AS(a)
		}
	}
}
