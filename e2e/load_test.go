package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// overloadRSSBoundMiB bounds the collector's RSS at full load and at twice
// it, on 1024 and 2048 connections, with serve's defaults: beacons in
// flight bounded by bytes (--beacon-inflight-bytes), the journal's rows in
// memory (4 MiB of lines), inserts built a block of 1,000 rows at a time,
// and the Go runtime's soft limit (--memory-limit, 112 MiB), which keeps
// the garbage collector from letting the live heap double at the peaks
// (make bench: 128 MiB at both loads; 144 MiB with a 128 MiB limit; 193
// and 209 MiB with a 12 MiB memory queue and a 192 MiB limit; 300-420 MiB
// before the limits). Each further connection costs about 20 KiB
// (net/http's buffers and its goroutine's stack).
const overloadRSSBoundMiB = 160

// TestBeaconOverload offers beacons at twice what the collector takes, for a
// minute: the collector sheds with 429/503 and Retry-After, its RSS stays
// under overloadRSSBoundMiB, it recovers (its journal drains, new beacons
// are taken), and every acknowledged beacon is stored exactly once, checked
// page view by page view against the generator's ledger.
//
// The load saturates both cores for minutes, so it is not part of `make
// test`: it runs with MERIDIAN_SOAK=1 (make soak) or MERIDIAN_BENCH=1 (make
// bench). MERIDIAN_LOAD_DURATION sets the 2× phase (default 1m; the 1×
// phase is half of it), MERIDIAN_LOAD_CONNS the connections at 1× (default
// 1024, as the bench's full load; twice that at 2×),
// MERIDIAN_LOAD_BEFORE=BINARY runs an older build first, in the same run,
// for figures side by side, and MERIDIAN_LOAD_ALSO="FLAGS" runs this tree
// once more with those serve flags (the last run is held to the promises).
func TestBeaconOverload(t *testing.T) {
	if os.Getenv("MERIDIAN_SOAK") == "" && os.Getenv("MERIDIAN_BENCH") == "" {
		t.Skip("saturates the machine for minutes: run with MERIDIAN_SOAK=1 (make soak) or MERIDIAN_BENCH=1")
	}
	dur := time.Minute
	if d, err := time.ParseDuration(os.Getenv("MERIDIAN_LOAD_DURATION")); err == nil {
		dur = d
	}
	conns := 1024
	if n, err := strconv.Atoi(os.Getenv("MERIDIAN_LOAD_CONNS")); err == nil && n > 0 {
		conns = n
	}
	chAddr := loadClickHouse(t)
	type build struct {
		name, bin string
		args      []string
	}
	var builds []build
	if b := os.Getenv("MERIDIAN_LOAD_BEFORE"); b != "" {
		builds = append(builds, build{"before", b, nil})
	}
	bin := strippedCollector(t)
	if also := strings.Fields(os.Getenv("MERIDIAN_LOAD_ALSO")); len(also) > 0 {
		builds = append(builds, build{"this tree " + strings.Join(also, " "), bin, also})
	}
	builds = append(builds, build{"this tree", bin, nil})
	var reports []overloadReport
	for _, b := range builds {
		reports = append(reports, runOverload(t, b.name, b.bin, chAddr, conns, dur, b.args...))
	}
	fmt.Printf("\nbeacon overload: 1× = %d connections as fast as answered, 2× = twice its 2xx/s offered on %d; loopback, 2 cores shared with ClickHouse\n", conns, 2*conns)
	for _, r := range reports {
		r.print()
	}
	checkOverload(t, reports[len(reports)-1])
}

// overloadPhase is one phase's figures.
type overloadPhase struct {
	run     *loadRun
	tally   loadTally
	peakKiB int64
}

type overloadReport struct {
	name       string
	one, two   overloadPhase
	target     float64 // 2× offered rate asked for
	idleKiB    int64
	afterKiB   int64
	drain      time.Duration // from the end of the 2× phase to an empty journal
	recovered  loadTally     // a light load after the drain
	check      loadCheck
	rejections map[string]float64
}

// runOverload runs one build: 1× (closed loop), drain, 2× (open loop at
// twice 1×'s 2xx/s), drain, a light load, and the ledger against
// ClickHouse.
func runOverload(t *testing.T, name, bin, chAddr string, conns int, dur time.Duration, args ...string) overloadReport {
	t.Helper()
	db := fmt.Sprintf("overload_%d", time.Now().UnixNano())
	meridian(t, bin, db, "migrate")
	conn, err := store.Open(context.Background(), store.Options{Addr: chAddr, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) // before Close: defers run last-in first-out
	key := lastLine(meridian(t, bin, db, "sites", "add", "load", "--origin", benchOrigin))
	geo := enrichtest.CityDB(t, map[string]enrichtest.City{"127.0.0.0/8": {Country: "NL", Region: "NH", City: "Amsterdam"}})
	asn := enrichtest.ASNDB(t, map[string]enrichtest.ASN{"127.0.0.0/8": {Number: 64512, Org: "Loopback Networks"}})
	// Only flags every build knows: the limits under test are defaults.
	c := startLoadCollector(t, bin, chAddr, db, append([]string{"--geoip-db", geo, "--asn-db", asn}, args...)...)
	defer c.stop(t)
	pid := c.cmd.Process.Pid
	r := overloadReport{name: name, idleKiB: rssKiB(t, pid)}
	// A phase's peak RSS covers the drain after it: reading the journal
	// back costs memory too.
	phase := func(g loadGen, d time.Duration) (overloadPhase, time.Duration) {
		stop := rssPeak(t, pid)
		run := g.run(d)
		drain := c.drained(t, conn, 5*time.Minute)
		return overloadPhase{run: run, tally: run.tally(), peakKiB: stop()}, drain
	}
	gen := loadGen{addr: c.addr, key: key, phase: 1, conns: conns, timeout: 30 * time.Second}
	r.one, _ = phase(gen, dur/2)
	// Twice the beacons come from twice the browsers: twice the
	// connections, or the generator could not offer them at the latency
	// of a saturated collector.
	gen.phase, gen.conns, gen.rate = 2, 2*conns, 2*r.one.run.perSecond(r.one.tally.ok)
	r.target = gen.rate
	r.two, r.drain = phase(gen, dur)

	light := loadGen{addr: c.addr, key: key, phase: 3, conns: 4, rate: 100, timeout: 10 * time.Second}.run(3 * time.Second)
	r.recovered = light.tally()
	c.drained(t, conn, time.Minute)
	r.afterKiB = rssKiB(t, pid)
	r.check = checkStored(t, conn, r.one.run, r.two.run, light)
	r.rejections = rejections(t, "http://"+c.addr+"/metrics")
	return r
}

// rejections are the collector's refused beacons by reason.
func rejections(t *testing.T, url string) map[string]float64 {
	out := map[string]float64{}
	for name, v := range scrapeMetrics(t, url) {
		if reason, ok := strings.CutPrefix(name, `meridian_beacon_rejected_total{reason="`); ok {
			out[strings.TrimSuffix(reason, `"}`)] = v
		}
	}
	return out
}

func (r overloadReport) print() {
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	fmt.Printf("%s:\n  %-24s %9s %8s %8s %8s %6s %9s %9s\n", r.name, "", "offered/s", "2xx/s", "429", "503", "other", "no answer", "peak RSS")
	for _, p := range []struct {
		name string
		p    overloadPhase
	}{{"1× (closed loop)", r.one}, {fmt.Sprintf("2× (%.0f/s asked)", r.target), r.two}} {
		t := p.p.tally
		fmt.Printf("  %-24s %9.0f %8.0f %8d %8d %6d %9d %6.1f MiB\n", p.name, p.p.run.perSecond(t.sent), p.p.run.perSecond(t.ok),
			t.s429, t.s503, t.other, t.none, mib(p.p.peakKiB))
	}
	c := r.check
	fmt.Printf("  acknowledged %d, stored %d (after FINAL): lost %d, duplicates %d, unknown %d; stored without an answer %d, stored though refused %d\n",
		c.acked, c.stored, c.lost, c.dups, c.strangers, c.unacked, c.refused)
	fmt.Printf("  RSS idle %.1f MiB, after %.1f MiB; journal drained %v after the 2× phase; then %d of %d light-load beacons taken\n",
		mib(r.idleKiB), mib(r.afterKiB), r.drain.Round(time.Second), r.recovered.ok, r.recovered.sent)
	fmt.Printf("  shed without Retry-After %d; pacer found no free connection %d times; rejected by reason %v\n", r.two.run.noRetry+r.one.run.noRetry, r.two.run.missed, r.rejections)
}

// checkOverload holds this tree's build to the promises.
func checkOverload(t *testing.T, r overloadReport) {
	c := r.check
	if c.lost != 0 || c.dups != 0 || c.strangers != 0 {
		t.Errorf("%d acknowledged beacons lost, %d stored twice, %d unknown page views: want 0 of each", c.lost, c.dups, c.strangers)
	}
	if peak := max(r.one.peakKiB, r.two.peakKiB); peak > overloadRSSBoundMiB<<10 {
		t.Errorf("peak RSS %.1f MiB, want at most %d MiB", float64(peak)/1024, overloadRSSBoundMiB)
	}
	if n := r.one.tally.other + r.two.tally.other; n > 0 {
		t.Errorf("%d answers were neither 2xx nor 429/503", n)
	}
	if n := r.one.run.noRetry + r.two.run.noRetry; n > 0 {
		t.Errorf("%d sheds without Retry-After", n)
	}
	// Shedding is the collector's, not the generator's, only if the
	// generator offered well past what the collector took.
	two := r.two.tally
	if offered := r.two.run.perSecond(two.sent); offered > 1.5*r.one.run.perSecond(r.one.tally.ok) && two.s429+two.s503 == 0 {
		t.Errorf("offered %.0f/s, 1.5× past the collector's 1× rate, and nothing was shed", offered)
	}
	if r.recovered.ok != r.recovered.sent {
		t.Errorf("after the load: %d of %d beacons taken, want all", r.recovered.ok, r.recovered.sent)
	}
}

// loadClickHouse is the test ClickHouse, or a throwaway one as `make
// bench` starts.
func loadClickHouse(t *testing.T) string {
	if addr := os.Getenv(chtest.EnvAddr); addr != "" {
		return addr
	}
	if out, err := exec.Command("../deploy/deps.sh", "clickhouse").CombinedOutput(); err != nil {
		t.Fatalf("deploy/deps.sh clickhouse: %v\n%s", err, out)
	}
	dir := t.TempDir()
	out, err := exec.Command("../deploy/clickhouse/local.sh", "start", dir).Output()
	if err != nil {
		t.Fatalf("deploy/clickhouse/local.sh start: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("../deploy/clickhouse/local.sh", "stop", dir).Run() })
	addr := lastLine(string(out))
	t.Setenv(chtest.EnvAddr, addr)
	return addr
}

// strippedCollector builds meridian as users run it: static, stripped.
func strippedCollector(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "meridian")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../collector/cmd/meridian")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
