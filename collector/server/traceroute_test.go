package server

import (
	"testing"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/result"
)

// Each hop gets the ASN database's answer for its address, lined up with
// the hops; a hop without an address, or one the database does not know,
// gets 0 and "".
func TestHopNetworks(t *testing.T) {
	en, err := enrich.Open(enrich.Options{ASNPath: enrichtest.ASNDB(t, map[string]enrichtest.ASN{
		"192.0.2.0/24":    {Number: 64500, Org: "First Transit"},
		"198.51.100.0/24": {Number: 64501, Org: "Second Carrier"},
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close()
	row := store.Row{Result: result.Result{Traceroute: &result.Traceroute{Hops: []result.TraceHop{
		{TTL: 1, Addr: "192.0.2.1"}, {TTL: 2}, {TTL: 3, Addr: "198.51.100.9"}, {TTL: 4, Addr: "203.0.113.5"},
	}}}}
	hopNetworks(en, &row)
	wantASN := []uint32{64500, 0, 64501, 0}
	wantOrg := []string{"First Transit", "", "Second Carrier", ""}
	for i := range wantASN {
		if row.HopASN[i] != wantASN[i] || row.HopOrg[i] != wantOrg[i] {
			t.Errorf("hop %d: got AS%d %q, want AS%d %q", i+1, row.HopASN[i], row.HopOrg[i], wantASN[i], wantOrg[i])
		}
	}
	other := store.Row{Result: result.Result{Kind: result.KindHTTP}}
	hopNetworks(en, &other)
	if other.HopASN != nil || other.HopOrg != nil {
		t.Errorf("a result without hops got %v %v", other.HopASN, other.HopOrg)
	}
}
