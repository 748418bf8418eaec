package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestSteeringEndToEnd: an agent in BR measures two members of a pool (two
// local targets); the collector publishes weights (serve --steering) and
// serves them at GET /v1/steering to a steering-reader token. When one
// target slows by 200 ms, its weight in country:BR falls in the feed; the
// time from the first slow response to the changed feed is logged. With
// MERIDIAN_BENCH=1 the collector recomputes every 15 s, the default; the
// test uses 5 s to stay short. Every other knob is the default.
func TestSteeringEndToEnd(t *testing.T) {
	collector, agent := binaries(t)
	db := fmt.Sprintf("e2e_steer_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		exec.Command("clickhouse-client", "--host", strings.Split(chtest.Addr(t), ":")[0],
			"--port", strings.Split(chtest.Addr(t), ":")[1], "--query", "DROP DATABASE IF EXISTS "+db).Run()
	})
	meridian(t, collector, db, "migrate")
	token := lastLine(meridian(t, collector, db, "agents", "add", "sp-1", "--region", "sa-east", "--country", "BR"))
	reader := lastLine(meridian(t, collector, db, "tokens", "add", "pdns", "--role", "steering-reader"))
	dir := t.TempDir()
	policy := filepath.Join(dir, "steering.yml")
	os.WriteFile(policy, []byte(`pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20]}
`), 0o644)
	meridian(t, collector, db, "steering", "policy", "set", "--file", policy)

	var slowB atomic.Int64 // extra milliseconds cdn-b's target waits
	target := func(extra *atomic.Int64) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(20*time.Millisecond + time.Duration(extra.Load())*time.Millisecond)
			fmt.Fprintln(w, "ok")
		}))
	}
	a, b := target(new(atomic.Int64)), target(&slowB)
	defer a.Close()
	defer b.Close()

	every := "5s"
	if os.Getenv("MERIDIAN_BENCH") != "" {
		every = "15s"
	}
	listen := freeAddr(t)
	start(t, "collector", []string{"MERIDIAN_CLICKHOUSE=" + chtest.Addr(t), "MERIDIAN_DATABASE=" + db},
		collector, "serve", "--listen", listen, "--spool-dir", filepath.Join(dir, "spool"), "--steering", "--steering-every", every)
	waitHTTP(t, "http://"+listen+"/readyz")
	config := filepath.Join(dir, "agent.yml")
	// cdn checks fetch through both members and name each in cdn_member;
	// four of them a second give each member enough samples for the fast
	// window (120 in 30 s).
	var checks strings.Builder
	for i := range 4 {
		fmt.Fprintf(&checks, "  - {name: through-%d, kind: cdn, interval: 1s, cdn: {members: {cdn-a: %q, cdn-b: %q}}}\n", i, a.URL+"/", b.URL+"/")
	}
	os.WriteFile(config, []byte("agent: {name: sp-1, region: sa-east}\nship: {interval: 200ms}\nchecks:\n"+checks.String()), 0o644)
	start(t, "agent", []string{"MERIDIAN_TOKEN=" + token, "MERIDIAN_COLLECTOR=http://" + listen},
		agent, "run", "--config", config, "--data-dir", filepath.Join(dir, "data"))

	feed := func() (map[string]int, bool) {
		req, _ := http.NewRequest("GET", "http://"+listen+"/v1/steering?pool=www", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, false // nothing published yet
		}
		var f steering.Feed
		if err := json.NewDecoder(resp.Body).Decode(&f); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /v1/steering: %d %v", resp.StatusCode, err)
		}
		sd, ok := f.Pools[0].Scope("country:BR")
		if !ok || sd.Rule == steering.RuleFallback {
			return nil, false // BR has too few samples of its own yet
		}
		return map[string]int{"cdn-a": sd.Members[0].Weight, "cdn-b": sd.Members[1].Weight}, true
	}
	wait := func(what string, limit time.Duration, ok func(map[string]int) bool) (map[string]int, time.Duration) {
		t.Helper()
		begin := time.Now()
		for time.Since(begin) < limit {
			if w, published := feed(); published && ok(w) {
				return w, time.Since(begin)
			}
			time.Sleep(100 * time.Millisecond)
		}
		w, _ := feed()
		t.Fatalf("%s: not within %v; the feed says %v", what, limit, w)
		return nil, 0
	}
	steady, _ := wait("weights from BR's own figures", 90*time.Second, func(w map[string]int) bool { return w["cdn-b"] >= 25 })
	slowB.Store(200)
	after, took := wait("cdn-b losing weight after slowing by 200 ms", 3*time.Minute, func(w map[string]int) bool { return w["cdn-b"] < steady["cdn-b"]/2 })
	t.Logf("BENCH steering end to end (recomputed every %s): cdn-b %d → %d in country:BR of GET /v1/steering %v after its target slowed by 200 ms",
		every, steady["cdn-b"], after["cdn-b"], took.Round(100*time.Millisecond))
}
