package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// visitorNet is a network the test's "browsers" connect from, and what the
// test GeoIP/ASN databases say of it.
type visitorNet struct {
	src     string // its network; each load worker binds its own address in it
	country string
	asn     uint32
}

var (
	// An ordinary visitor network.
	visitorsBR = visitorNet{"127.77.0.0", "BR", 28573}
	// Visitors inside a --trusted-proxy range (as when a site trusts
	// 10.0.0.0/8 and its offices are in it): only HAProxy deleting the
	// client's X-Forwarded-For keeps them from choosing their country.
	visitorsDE = visitorNet{"127.99.0.0", "DE", 3320}
	// HAProxy, as the collectors see it: stored rows must never say this.
	proxyNet = visitorNet{"127.0.0.1", "NL", 64512}
)

// forgedXFF is what every test browser claims to be; stored rows must
// never say KP / AS64666.
const forgedXFF = "203.0.113.66"

// trustedProxies is the collectors' --trusted-proxy: HAProxy's address,
// as deploy/haproxy/meridian.cfg says, plus the DE visitors' range.
var trustedProxies = []string{"127.0.0.1/32", "127.99.0.0/16"}

// scaleoutDBs writes the test GeoIP and ASN databases.
func scaleoutDBs(t *testing.T) (geo, asn string) {
	geo = enrichtest.CityDB(t, map[string]enrichtest.City{
		"127.0.0.1/32":   {Country: "NL", Region: "NH", City: "Amsterdam"},
		"127.77.0.0/16":  {Country: "BR", Region: "SP", City: "São Paulo"},
		"127.99.0.0/16":  {Country: "DE", Region: "BE", City: "Berlin"},
		"203.0.113.0/24": {Country: "KP", City: "Pyongyang"},
	})
	asn = enrichtest.ASNDB(t, map[string]enrichtest.ASN{
		"127.0.0.1/32":   {Number: 64512, Org: "The load balancer"},
		"127.77.0.0/16":  {Number: 28573, Org: "Claro"},
		"127.99.0.0/16":  {Number: 3320, Org: "Deutsche Telekom"},
		"203.0.113.0/24": {Number: 64666, Org: "Forgers"},
	})
	return geo, asn
}

// collector is one `meridian serve` of the test, on its own ClickHouse
// node (each collector writes through its node's Distributed tables) and
// its own journal.
type collector struct {
	name, listen, spool string
	env                 []string
	args                []string // what every start shares
}

func newCollector(t *testing.T, name, chAddr, db, geo, asn string) *collector {
	c := &collector{name: name, listen: freeAddr(t), spool: filepath.Join(t.TempDir(), "spool"),
		env: []string{"MERIDIAN_CLICKHOUSE=" + chAddr, "MERIDIAN_DATABASE=" + db}}
	c.args = []string{"serve", "--listen", c.listen, "--spool-dir", c.spool, "--geoip-db", geo, "--asn-db", asn}
	for _, p := range trustedProxies {
		c.args = append(c.args, "--trusted-proxy", p)
	}
	return c
}

func (c *collector) start(t *testing.T, bin, label, flush string) *proc {
	p := runProc(t, c.name+label, syscall.SIGTERM, c.env, bin, append(c.args, "--flush-interval", flush)...)
	waitHTTP(t, "http://"+c.listen+"/readyz")
	return p
}

// checkSiteLookup fails the test unless c can look the site up: a beacon
// from an origin the site did not register must be refused (403), which
// takes a site lookup and stores nothing. Behind HAProxy a collector that
// cannot (503) would go unnoticed: the proxy retries on the other one.
func (c *collector) checkSiteLookup(t *testing.T, key string) {
	t.Helper()
	body := beaconBody(key, "ffffffff-0000-4000-8000-000000000000")
	var status int
	var answer []byte
	// The site's row reaches its shard asynchronously (Distributed insert).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest("POST", "http://"+c.listen+"/v1/beacon", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "https://stranger.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if status = resp.StatusCode; status == http.StatusForbidden {
			return
		}
	}
	t.Fatalf("%s cannot look up the site through its ClickHouse node: a beacon from an unregistered origin got %d %s, want 403 "+
		"(`meridian sites list` against that node shows the storage error)", c.name, status, answer)
}

// journalEmpty tells whether every row in c's journal is in ClickHouse.
func (c *collector) journalEmpty() bool {
	segs, _ := filepath.Glob(filepath.Join(c.spool, "*", "seg-*"))
	return len(segs) == 0
}

// scaleout is what the test and the bench share: a database on the
// two-shard cluster, a site, the test GeoIP/ASN databases and two
// collectors (not started), each on its own node.
type scaleout struct {
	chAddr, db, key string
	conn            driver.Conn
	a, b            *collector
}

func newScaleout(t *testing.T, bin string) *scaleout {
	t.Helper()
	addrs, db, conn := clusterDatabase(t, bin)
	s := &scaleout{chAddr: addrs[0], db: db, conn: conn}
	s.key = lastLine(meridianOn(t, bin, addrs[0], db, "sites", "add", "shop", "--origin", benchOrigin))
	geo, asn := scaleoutDBs(t)
	s.a = newCollector(t, "collector-a", addrs[0], db, geo, asn)
	s.b = newCollector(t, "collector-b", addrs[1], db, geo, asn)
	return s
}

// TestScaleOutBehindHAProxy: two collectors behind the shipped HAProxy
// config, on the two-shard cluster; an agent and browsers (from several
// visitor networks, each forging X-Forwarded-For) send through the proxy;
// collector A is killed with SIGKILL mid-load and B carries on. Every
// acknowledged result and beacon is then in ClickHouse exactly once, and
// every page view carries its visitor's country and ASN, never the
// proxy's or the forged one.
func TestScaleOutBehindHAProxy(t *testing.T) {
	needHAProxy(t)
	bin, agentBin := binaries(t)
	s := newScaleout(t, bin)
	token := lastLine(meridianOn(t, bin, s.chAddr, s.db, "agents", "add", "lb-1", "--region", "lab"))
	// A inserts nothing before it dies (a 1-hour flush interval): all it
	// acknowledged is then only in its journal, which is the promise under
	// test (a 2xx means fsynced there, not yet in ClickHouse).
	procA := s.a.start(t, bin, "", "1h")
	s.b.start(t, bin, "", "100ms")
	s.a.checkSiteLookup(t, s.key)
	s.b.checkSiteLookup(t, s.key)
	lb := freeAddr(t)
	startHAProxy(t, "haproxy", haproxyConfig(t, lb, []string{s.a.listen, s.b.listen}), lb)

	var hits atomic.Int64 // each check run is one request: what the agent produced
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	agent := startAgent(t, agentBin, "http://"+lb, token, target.URL)

	load, killedAt, servedA, servedB := s.loadAndKill(t, lb, procA)
	// SIGTERM: the agent finishes its checks and ships what it has spooled
	// (through HAProxy, to B) before exiting.
	if err := agent.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("agent did not exit cleanly: %v", err)
	}
	produced := hits.Load()
	acked, failed := load.summary(killedAt)
	t.Logf("beacons through HAProxy: %d acknowledged (%d after the kill at %v), %d not; before the kill A acknowledged %.0f, B %.0f; agent results: %d",
		acked.total, acked.afterKill, killedAt.Sub(load.started).Round(time.Millisecond), failed.total, servedA, servedB, produced)

	// The load is over. A's acknowledged rows are in its journal only:
	// start it again on the same spool dir and it inserts them.
	s.a.start(t, bin, " (restarted)", "100ms")
	pvs, results, resultIDs := s.settle(t, load, produced)
	drained := scrapeMetrics(t, "http://"+s.a.listen+"/metrics")[`meridian_store_spool_drained_total{what="beacons"}`]

	if servedA == 0 || servedB == 0 || acked.afterKill < 50 || produced < 10 {
		t.Errorf("the load did not exercise both collectors: before the kill A acknowledged %.0f and B %.0f beacons, %d were acknowledged after it, the agent made %d results",
			servedA, servedB, acked.afterKill, produced)
	}
	if drained < servedA {
		t.Errorf("restarted A read back %.0f beacons from its journal, want at least the %.0f it acknowledged before the kill", drained, servedA)
	}
	if failed.total > 0 {
		t.Errorf("%d beacons not acknowledged (status: count, 0 is no answer: %v): HAProxy should have retried them on B (retry-on in meridian.cfg)", failed.total, failed.byStatus)
	}
	checkBeaconsStored(t, s.conn, load, pvs)
	if results != uint64(produced) || resultIDs != uint64(produced) {
		t.Errorf("results: %d after FINAL, %d distinct ids; want %d each (one per check run the target saw, once)", results, resultIDs, produced)
	}
}

// loadAndKill sends beacons through the proxy at lb for 8 s and kills A
// (SIGKILL) after 3; it returns what was sent, when A died and how many
// beacons each collector had acknowledged by then.
func (s *scaleout) loadAndKill(t *testing.T, lb string, procA *proc) (*beaconLoad, time.Time, float64, float64) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	workers := []visitorNet{visitorsBR, visitorsBR, visitorsBR, visitorsDE, visitorsDE}
	load := runBeacons(ctx, "http://"+lb+"/v1/beacon", s.key, workers)
	time.Sleep(3 * time.Second)
	servedA, servedB := s.a.served(t), s.b.served(t)
	procA.cmd.Process.Kill()
	killedAt := time.Now()
	<-procA.done
	time.Sleep(5 * time.Second)
	stop()
	load.wait()
	return load, killedAt, servedA, servedB
}

// settle waits (up to 30 s) until ClickHouse has every acknowledged
// beacon and every result and A's journal is empty, and returns the page
// views, the results after FINAL and their distinct ids.
func (s *scaleout) settle(t *testing.T, load *beaconLoad, produced int64) (map[string]visitorNet, uint64, uint64) {
	t.Helper()
	start := time.Now()
	for {
		pvs := storedPageViews(t, s.conn)
		results, ids := countResults(t, s.conn)
		done := len(load.missing(pvs)) == 0 && results >= uint64(produced) && s.a.journalEmpty()
		if done || time.Since(start) > 30*time.Second {
			if !s.a.journalEmpty() {
				t.Errorf("collector A's journal still holds rows 30s after its restart")
			}
			t.Logf("ClickHouse had everything %v after A's restart", time.Since(start).Round(100*time.Millisecond))
			return pvs, results, ids
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startAgent runs meridian-agent with four http checks of target every
// second, shipping every 100 ms to collectorURL.
func startAgent(t *testing.T, bin, collectorURL, token, target string) *proc {
	dir := t.TempDir()
	config := filepath.Join(dir, "agent.yml")
	cfg := "agent: {name: lb-1, region: lab}\nship: {interval: 100ms}\nchecks:\n"
	for i := range 4 {
		cfg += fmt.Sprintf("  - {name: c%d, kind: http, target: %q, interval: 1s}\n", i, fmt.Sprintf("%s/%d", target, i))
	}
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return runProc(t, "agent", syscall.SIGTERM, []string{"MERIDIAN_TOKEN=" + token, "MERIDIAN_COLLECTOR=" + collectorURL},
		bin, "run", "--config", config, "--data-dir", filepath.Join(dir, "data"), "--config-poll", "0")
}

// served is how many beacons c has acknowledged.
func (c *collector) served(t *testing.T) float64 {
	return scrapeMetrics(t, "http://"+c.listen+"/metrics")["meridian_beacons_total"]
}

// checkBeaconsStored: every acknowledged beacon is stored (an unanswered
// one may be too: it reached a journal before its answer was lost), none
// that was not sent, each with its visitor's country and ASN.
func checkBeaconsStored(t *testing.T, conn driver.Conn, l *beaconLoad, pvs map[string]visitorNet) {
	t.Helper()
	missing := l.missing(pvs)
	var strangers, wrong []string
	for pv, got := range pvs {
		s, ok := l.sent[pv]
		switch {
		case !ok:
			strangers = append(strangers, pv)
		case got.country != s.from.country || got.asn != s.from.asn:
			wrong = append(wrong, fmt.Sprintf("%s from %s: %s AS%d, want %s AS%d", pv, s.from.src, got.country, got.asn, s.from.country, s.from.asn))
		}
	}
	t.Logf("rum_pageviews: %d page views after FINAL, %d rows before (replays of unanswered requests fold)", len(pvs), countPageViewRows(t, conn))
	for what, list := range map[string][]string{"acknowledged but not stored": missing, "stored but never sent": strangers, "wrong enrichment": wrong} {
		if len(list) > 0 {
			sort.Strings(list)
			t.Errorf("%d beacons %s (proxy is %s AS%d, forged is KP AS64666); first: %v", len(list), what, proxyNet.country, proxyNet.asn, list[:min(5, len(list))])
		}
	}
}

// TestScaleOutBench is `make bench`'s scale-out figure: beacons/s that wrk
// gets through HAProxy (the shipped config) to one collector and to two,
// measured one after the other in the same run, plus wrk straight at one
// collector for HAProxy's own cost. On one machine every process (wrk,
// HAProxy, the collectors, both ClickHouse nodes) shares the same cores,
// so the ratio says how much of the machine a second collector can still
// use, not how far collectors on their own machines scale. Only with
// MERIDIAN_BENCH=1; MERIDIAN_BENCH_DURATION per phase (default 15s),
// MERIDIAN_BENCH_CONNS (default 1024) and MERIDIAN_BENCH_FLUSH (the
// collectors' --flush-interval, default theirs, 250ms) as for
// TestBeaconIngestBench.
func TestScaleOutBench(t *testing.T) {
	if os.Getenv("MERIDIAN_BENCH") == "" {
		t.Skip("a benchmark, not a test: run with MERIDIAN_BENCH=1 (make bench)")
	}
	dur, conns, flush := 15*time.Second, 1024, "250ms"
	if f := os.Getenv("MERIDIAN_BENCH_FLUSH"); f != "" {
		flush = f
	}
	if d, err := time.ParseDuration(os.Getenv("MERIDIAN_BENCH_DURATION")); err == nil {
		dur = d
	}
	if n, err := strconv.Atoi(os.Getenv("MERIDIAN_BENCH_CONNS")); err == nil && n > 0 {
		conns = n
	}
	if out, err := exec.Command("../deploy/deps.sh", "haproxy", "wrk", "clickhouse").CombinedOutput(); err != nil {
		t.Fatalf("deploy/deps.sh haproxy wrk clickhouse: %v\n%s", err, out)
	}
	benchCluster(t)
	bin, _ := binaries(t)
	s := newScaleout(t, bin)
	pa, pb := s.a.start(t, bin, "", flush), s.b.start(t, bin, "", flush)
	s.a.checkSiteLookup(t, s.key)
	s.b.checkSiteLookup(t, s.key)
	lb1, lb2 := freeAddr(t), freeAddr(t)
	h1 := startHAProxy(t, "haproxy-1", haproxyConfig(t, lb1, []string{s.a.listen}), lb1)
	h2 := startHAProxy(t, "haproxy-2", haproxyConfig(t, lb2, []string{s.a.listen, s.b.listen}), lb2)
	script := beaconWrkScript(t, s.key)

	phases := []struct {
		name, url string
		proxy     *proc
	}{
		{"direct,  1 collector ", s.a.listen, nil},
		{"HAProxy, 1 collector ", lb1, h1},
		{"HAProxy, 2 collectors", lb2, h2},
	}
	pids := map[string][]int{"collectors": {pa.cmd.Process.Pid, pb.cmd.Process.Pid}, "clickhouse": clusterPIDs()}
	rates, least := make([]float64, len(phases)), 1.0
	t.Logf("BENCH scaleout: wrk -t2 -c%d -d%v POST /v1/beacon (%d-byte beacon), --flush-interval %s, %d cores; CPU µs per 2xx (ClickHouse's until it has them all)",
		conns, dur, len(beaconBody(s.key, "PV")), flush, runtime.NumCPU())
	for i, p := range phases {
		pids["haproxy"] = nil
		if p.proxy != nil {
			pids["haproxy"] = []int{p.proxy.cmd.Process.Pid}
		}
		r, cpu := s.benchPhase(t, script, "http://"+p.url+"/v1/beacon", i+10, conns, dur, pids)
		rates[i], least = r.okRate(), min(least, cpu["ours"]/cpu["machine"])
		machine := float64(runtime.NumCPU()) * cpu["wall"]
		t.Logf("BENCH scaleout %s %6.0f beacons/s (%d shed)  p50 %7s  p99 %7s  machine busy %3.0f%% (these processes %3.0f%%)  CPU: collectors %3.0f  haproxy %3.0f  wrk %3.0f  clickhouse %3.0f",
			p.name, r.okRate(), r.Shed, us(r.P50Us), us(r.P99Us), 100*cpu["machine"]/machine, 100*cpu["ours"]/machine,
			perBeacon(cpu["collectors"], r), perBeacon(cpu["haproxy"], r), perBeacon(r.CPU, r), perBeacon(cpu["clickhouse"], r))
	}
	if least < 0.8 {
		t.Logf("BENCH scaleout warning: other processes took %.0f%% of the machine's busy time in a phase; the phases are not comparable, run again on a quiet machine", 100*(1-least))
	}
	t.Logf("BENCH scaleout ratio two/one collectors through HAProxy: %.2f; HAProxy/direct with one: %.2f (everything on this machine's %d cores: bounded by CPU, not by the collectors)",
		rates[2]/rates[1], rates[1]/rates[0], runtime.NumCPU())
}

// benchPhase runs wrk at url, then waits until ClickHouse has every
// acknowledged beacon (its inserts are part of a beacon's cost). It
// returns wrk's figures and the CPU seconds each group of pids spent
// meanwhile; while wrk ran ("wall" seconds), "machine" is the whole
// machine's and "ours" that of wrk and pids (the rest is whatever else
// the machine was doing).
func (s *scaleout) benchPhase(t *testing.T, script, url string, phase, conns int, dur time.Duration, pids map[string][]int) (wrkResult, map[string]float64) {
	t.Helper()
	ticks := func() map[string]int64 {
		m := map[string]int64{}
		for name, ps := range pids {
			for _, p := range ps {
				m[name] += cpuTicks(t, p)
			}
		}
		return m
	}
	before, t0, m0, start := countPageViewRows(t, s.conn), ticks(), busyTicks(t), time.Now()
	r := runWrk(t, script, url, phase, conns, dur)
	cpu := map[string]float64{"machine": float64(busyTicks(t)-m0) / 100, "ours": r.CPU, "wall": time.Since(start).Seconds()} // USER_HZ = 100
	for name, n := range ticks() {
		cpu["ours"] += float64(n-t0[name]) / 100
	}
	stored := before
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		n := countPageViewRows(t, s.conn)
		if n == stored && n >= before+uint64(r.OK) {
			break
		}
		stored = n
	}
	for name, n := range ticks() {
		cpu[name] = float64(n-t0[name]) / 100
	}
	if stored-before < uint64(r.OK) || r.Other > 0 {
		t.Errorf("%s: %d beacons acknowledged, %d stored, %d answers neither 2xx nor 429/503", url, r.OK, stored-before, r.Other)
	}
	return r, cpu
}

// clusterPIDs finds the test cluster's ClickHouse processes (those this
// user can see).
func clusterPIDs() []int {
	var pids []int
	for _, a := range strings.Split(os.Getenv(chtest.EnvCluster), ",") {
		_, port, _ := strings.Cut(a, ":")
		p, _ := strconv.Atoi(port)
		if pid := listenerPID(p); pid != 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

func perBeacon(sec float64, r wrkResult) float64 { return 1e6 * sec / max(1, float64(r.OK)) }

// benchCluster makes sure there is a two-shard cluster: make test's, or a
// throwaway one as local.sh starts it.
func benchCluster(t *testing.T) {
	if os.Getenv(chtest.EnvCluster) != "" {
		return
	}
	dir := t.TempDir()
	out, err := exec.Command("../deploy/clickhouse/local.sh", "start-cluster", dir).Output()
	if err != nil {
		t.Fatalf("deploy/clickhouse/local.sh start-cluster: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("../deploy/clickhouse/local.sh", "stop-cluster", dir).Run() })
	t.Setenv(chtest.EnvCluster, lastLine(string(out)))
}
