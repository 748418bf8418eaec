package steering_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/steering/routertest"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// shareBar is how far, in percentage points, a measured answer share may
// stray from its weight. pickwhashed hashes the client (here the ECS)
// address, so a /24 has only 256 answers to give, fixed by the hash: the
// shares are measured over 2000 random addresses of a /16 (a spread of
// about 1.1 points at 50/50, 0.9 at 80/20), and the /24s are checked
// address by address for a member that must never appear.
const shareBar = 5.0

// geoRanges are the networks the test mmdb places in each country.
var geoRanges = map[string]string{
	"192.0.2.0/24": "BR", "198.51.100.0/24": "US", "203.0.113.0/24": "DE",
	"10.1.0.0/16": "BR", "10.2.0.0/16": "US", "10.3.0.0/16": "DE",
}

// TestPushPowerDNS pushes decisions into a real PowerDNS through its API
// and checks the answers it then gives clients of each country (told by
// EDNS Client Subnet): shares follow the weights, the down member never
// appears, and a second push moves the shares.
func TestPushPowerDNS(t *testing.T) {
	srv := routertest.PowerDNS(t, geoRanges)
	srv.CreateZone(t, "shop.example.")
	_, conn := chtest.New(t)
	ctx := context.Background()
	pool := pushPool(steering.Router{Name: "dns", Kind: steering.RouterPDNS, API: srv.API, APIKeyEnv: "PDNS_API_KEY", ServerID: srv.ServerID, Zone: "shop.example."})
	p := &steering.Pusher{Conn: conn, Render: renderers(), Logf: t.Logf,
		Getenv: func(k string) string { return map[string]string{"PDNS_API_KEY": srv.APIKey}[k] }}

	for _, c := range []struct {
		br   int
		want map[string]map[string]float64 // country → address → percent
	}{
		{80, map[string]map[string]float64{
			"BR": {"192.0.2.10": 80, "192.0.2.20": 20},
			"US": {"192.0.2.20": 100},
			"DE": {"192.0.2.10": 50, "192.0.2.20": 50},
		}},
		{20, map[string]map[string]float64{"BR": {"192.0.2.10": 20, "192.0.2.20": 80}}},
	} {
		d := pushDecision(time.Now(), c.br)
		res, err := p.Push(ctx, d, pool, nil)
		if err != nil || len(res) != 1 || !res[0].OK {
			t.Fatalf("push BR %d: %v %+v", c.br, err, res)
		}
		for _, cidr := range []string{"10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"} {
			want, ok := c.want[geoRanges[cidr]]
			if !ok {
				continue
			}
			start := time.Now()
			got := answerShares(t, srv.DNSAddr, "www.shop.example.", cidr, 2000)
			t.Logf("BR %d: %s (%s) answers %v, want %v ± %v (%v)", c.br, geoRanges[cidr], cidr, got, want, shareBar, time.Since(start))
			for addr, share := range got {
				if _, ok := want[addr]; !ok {
					t.Errorf("%s (%s) got %s in %.1f%% of answers, want never", geoRanges[cidr], cidr, addr, share)
				}
			}
			if strings.HasSuffix(cidr, "/24") {
				continue // 256 fixed hashes: no share to measure
			}
			for addr, w := range want {
				if g := got[addr]; g < w-shareBar || g > w+shareBar {
					t.Errorf("%s (%s) got %s in %.1f%% of answers, want %v ± %v", geoRanges[cidr], cidr, addr, g, w, shareBar)
				}
			}
		}
	}
	if last, err := steering.LastPushes(ctx, conn, "www"); err != nil || len(last) != 1 || !last[0].OK || last[0].Kind != "pdns" {
		t.Errorf("steering_pushes: %+v %v, want the last push, ok", last, err)
	}
}

// answerShares sends A queries for name, each with an EDNS Client Subnet
// of one /32 in cidr, and returns the percent of answers naming each
// address: n random addresses, or every address of a smaller cidr once.
func answerShares(t *testing.T, server, name, cidr string, n int) map[string]float64 {
	t.Helper()
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		t.Fatal(err)
	}
	size := 1 << (32 - prefix.Bits())
	base := prefix.Addr().As4()
	var ips []net.IP
	for i := range min(n, size) {
		if n < size {
			i = rand.IntN(size)
		}
		ips = append(ips, binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(base[:])+uint32(i)))
	}
	const workers = 8
	answers, errs := make([]string, len(ips)), make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(ips) && errs[w] == nil; i += workers {
				answers[i], errs[w] = queryA(server, name, ips[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, a := range answers {
		counts[a]++
	}
	shares := map[string]float64{}
	for a, c := range counts {
		shares[a] = math.Round(1000*float64(c)/float64(len(ips))) / 10
	}
	return shares
}

// queryA asks server for name's A record as a client at ip (by ECS).
func queryA(server, name string, ip net.IP) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32, Address: ip})
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, server)
	if err != nil {
		return "", fmt.Errorf("query %s from %s: %w", name, ip, err)
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return "", fmt.Errorf("query %s from %s: got %v, want one A", name, ip, r)
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok {
		return "", fmt.Errorf("query %s from %s: got %v, want an A", name, ip, r.Answer[0])
	}
	return a.A.String(), nil
}
