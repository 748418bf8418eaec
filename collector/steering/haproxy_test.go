package steering_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/steering/routertest"
)

// TestPushHAProxy pushes weights into a real HAProxy over its runtime API,
// once by the unix socket and once over TCP, and counts where requests
// then go: roundrobin follows the weights to within a few requests, and a
// down member's server, put in maintenance, gets none.
//
// The shares are counted over the second 1000 requests after a push:
// HAProxy 2.6's roundrobin can be lopsided for about one round of its
// weights after a change (weights 70/30/maint → 20/30/50 sent s1 8 of the
// first 1000 requests, then exactly 20%), which steering cannot avoid and
// a test must not mistake for a failed push.
func TestPushHAProxy(t *testing.T) {
	ha := routertest.HAProxy(t, "www", routertest.Backends(t, "s1", "s2", "s3"))
	servers := map[string]string{"cdn-a": "s1", "cdn-b": "s2", "cdn-c": "s3"}
	pool := pushPool()
	pool.Members = append(pool.Members, steering.Member{Name: "cdn-c", Addresses: []string{"192.0.2.30"}})
	p := &steering.Pusher{Render: renderers(), Logf: t.Logf}
	ctx := context.Background()
	for _, c := range []struct {
		runtime string
		weights [3]int
		down    int // index of the member down, or -1
		want    map[string]float64
	}{
		{ha.Socket, [3]int{60, 30, 10}, -1, map[string]float64{"s1": 60, "s2": 30, "s3": 10}},
		{ha.RuntimeTCP, [3]int{70, 30, 0}, 2, map[string]float64{"s1": 70, "s2": 30}},
		{ha.Socket, [3]int{20, 30, 50}, -1, map[string]float64{"s1": 20, "s2": 30, "s3": 50}},
	} {
		pool.Routers = []steering.Router{{Name: "edge", Kind: steering.RouterHAProxy, Runtime: c.runtime, Backend: "www", Scope: "global", Servers: servers}}
		d := &steering.Decision{Pool: "www", DNSName: pool.DNSName, TTL: 30, ComputedAt: time.Now(),
			Scopes: []steering.ScopeDecision{{Scope: "global", Rule: steering.RuleScore}}}
		for i, m := range pool.Members {
			state := steering.StateUp
			if i == c.down {
				state = steering.StateDown
			}
			d.Scopes[0].Members = append(d.Scopes[0].Members, steering.MemberDecision{Name: m.Name, Weight: c.weights[i], State: state})
		}
		if res, err := p.Push(ctx, d, pool, nil); err != nil || !res[0].OK {
			t.Fatalf("push %v by %s: %v", c.weights, c.runtime, err)
		}
		first := requestShares(t, ha.URL, 1000)
		got := requestShares(t, ha.URL, 1000)
		t.Logf("weights %v (down %d) by %s: first 1000 requests %v, next 1000 %v", c.weights, c.down, c.runtime, first, got)
		for s, share := range got {
			if w := c.want[s]; share < w-2 || share > w+2 {
				t.Errorf("weights %v: %s got %.1f%% of requests, want %v ± 2", c.weights, s, share, w)
			}
		}
		for s, w := range c.want {
			if _, ok := got[s]; !ok && w > 0 {
				t.Errorf("weights %v: %s got no requests, want %v%%", c.weights, s, w)
			}
		}
	}
}

// requestShares sends n requests to url and returns the percent answered
// by each backend server (which answers its name).
func requestShares(t *testing.T, url string, n int) map[string]float64 {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	counts := map[string]int{}
	for range n {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %q %v", url, resp.Status, b, err)
		}
		counts[string(b)]++
	}
	shares := map[string]float64{}
	for s, c := range counts {
		shares[s] = 100 * float64(c) / float64(n)
	}
	return shares
}
