package e2e

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// TestAgentFootprint is the agent's resource benchmark behind `make bench`.
// Three processes run side by side over one window (MERIDIAN_BENCH_DURATION,
// default 3m), so a busy machine slows them alike:
//   - an agent with 40 http checks every 12 s (200 a minute) against one
//     loopback target, shipping to a sink that accepts everything;
//   - the floor (e2e/httpfloor): a bare net/http client making the same
//     fresh-connection GETs on the same schedule and nothing else;
//   - an agent with 200 checks a minute of every cheap kind mixed.
//
// It prints each one's CPU per check (the target counts the GETs each made
// in the window), RSS peak and the binary size. A report, not a pass/fail
// test: it runs only with MERIDIAN_BENCH=1.
func TestAgentFootprint(t *testing.T) {
	if os.Getenv("MERIDIAN_BENCH") == "" {
		t.Skip("a benchmark, not a test: run with MERIDIAN_BENCH=1 (make bench)")
	}
	dur := 3 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("MERIDIAN_BENCH_DURATION")); err == nil {
		dur = d
	}
	// The binaries users run: static and stripped, as `make build` makes them.
	agent := buildStatic(t, "../agent/cmd/meridian-agent")
	floor := buildStatic(t, "./httpfloor")
	web := newCountingTarget(t)
	httpSink, mixedSink := newResultSink(t), newResultSink(t)

	procs := []*benchProc{
		{name: "agent, 40 http checks / 12 s", ua: "meridian-agent",
			cmd: startBenchAgent(t, agent, httpSink.URL, httpOnlyConfig(web.URL+"/"))},
		{name: "floor: bare net/http client", ua: "httpfloor",
			cmd: start(t, "floor", nil, floor, "--url", web.URL+"/", "--checks", "40", "--interval", "12s")},
		{name: "agent, 200 checks/min mixed", cmd: startBenchAgent(t, agent, mixedSink.URL, mixedConfig(t))},
	}
	// Let the first staggered runs and the agents' start-up pass, so the
	// window holds steady state only.
	time.Sleep(3 * time.Second)
	for _, p := range procs {
		p.begin(t, web)
	}
	began := time.Now()
	for time.Since(began) < dur {
		time.Sleep(5 * time.Second)
		for _, p := range procs {
			p.sampleRSS(t)
		}
	}
	for _, p := range procs {
		p.end(t, web)
	}
	fmt.Printf("\nagent footprint over %v, side by side (CPU: user+sys; per check: over the GETs the target saw)\n", dur.Round(time.Second))
	fmt.Printf("  %-32s %8s %10s %12s %14s\n", "", "checks", "CPU s", "CPU/check", "RSS peak/last")
	for _, p := range procs {
		p.print()
	}
	if a, f := procs[0].perCheck(), procs[1].perCheck(); f > 0 {
		fmt.Printf("  agent / floor per http check: %.2fx (%.0f µs above the floor)\n", a/f, (a-f)*1e6)
	}
	fmt.Printf("  results shipped: %d (http), %d (mixed)\n", httpSink.received.Load(), mixedSink.received.Load())
	st, _ := os.Stat(agent)
	fmt.Printf("  agent binary %.2f MiB (static, stripped)\n", float64(st.Size())/(1<<20))
}

// benchProc is one measured process and what the window saw of it.
type benchProc struct {
	name, ua string // ua: the User-Agent its http GETs carry, "" if not counted
	cmd      *exec.Cmd

	cpu0, cpu   int64 // clock ticks
	gets0, gets int64
	peak, last  int64 // RSS KiB
	seconds     float64
	began       time.Time
}

func (p *benchProc) begin(t *testing.T, web *countingTarget) {
	p.cpu0, p.gets0, p.began = cpuTicks(t, p.cmd.Process.Pid), web.count(p.ua), time.Now()
}

func (p *benchProc) sampleRSS(t *testing.T) {
	p.last = rssKiB(t, p.cmd.Process.Pid)
	p.peak = max(p.peak, p.last)
}

func (p *benchProc) end(t *testing.T, web *countingTarget) {
	p.cpu = cpuTicks(t, p.cmd.Process.Pid) - p.cpu0
	p.gets = web.count(p.ua) - p.gets0
	p.seconds = time.Since(p.began).Seconds()
}

// perCheck is CPU seconds per GET the target counted (USER_HZ = 100).
func (p *benchProc) perCheck() float64 {
	if p.gets == 0 {
		return 0
	}
	return float64(p.cpu) / 100 / float64(p.gets)
}

func (p *benchProc) print() {
	per := "-"
	if p.ua != "" {
		per = fmt.Sprintf("%.0f µs", p.perCheck()*1e6)
	}
	gets := "-"
	if p.ua != "" {
		gets = strconv.FormatInt(p.gets, 10)
	}
	fmt.Printf("  %-32s %8s %10.2f %12s %6.1f/%.1f MiB  (%.2f%% of a core)\n", p.name, gets, float64(p.cpu)/100, per,
		float64(p.peak)/1024, float64(p.last)/1024, float64(p.cpu)/p.seconds)
}

func buildStatic(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func startBenchAgent(t *testing.T, bin, collector, config string) *exec.Cmd {
	t.Helper()
	file := filepath.Join(t.TempDir(), "bench.yml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return start(t, "agent", []string{"MERIDIAN_TOKEN=bench", "MERIDIAN_COLLECTOR=" + collector}, bin,
		"run", "--config", file, "--data-dir", filepath.Join(t.TempDir(), "data"))
}

const benchConfigHead = "agent: {name: bench, region: lab}\nship: {interval: 1s}\nchecks:\n"

// httpOnlyConfig is the comparison: 40 http checks every 12 s.
func httpOnlyConfig(url string) string {
	var b strings.Builder
	b.WriteString(benchConfigHead)
	for i := range 40 {
		fmt.Fprintf(&b, "  - {name: http-%d, kind: http, target: %q, interval: 12s}\n", i, url)
	}
	return b.String()
}

// mixedConfig is 40 checks every 12 s, http, dns, tcp, tls and icmp in turn,
// against targets of its own.
func mixedConfig(t *testing.T) string {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(web.Close)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(tlsSrv.Close)
	resolver := dnsServer(t, "bench.test. 60 IN A 127.0.0.1")
	var b strings.Builder
	b.WriteString(benchConfigHead)
	for i := range 40 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "  - {name: http-%d, kind: http, target: %q, interval: 12s}\n", i, web.URL+"/")
		case 1:
			fmt.Fprintf(&b, "  - {name: dns-%d, kind: dns, target: bench.test, interval: 12s, dns: {resolvers: [%q]}}\n", i, resolver)
		case 2:
			fmt.Fprintf(&b, "  - {name: tcp-%d, kind: tcp, target: %q, interval: 12s}\n", i, strings.TrimPrefix(web.URL, "http://"))
		case 3:
			fmt.Fprintf(&b, "  - {name: tls-%d, kind: tls, target: %q, interval: 12s, tls: {insecure_skip_verify: true}}\n", i, strings.TrimPrefix(tlsSrv.URL, "https://"))
		case 4:
			fmt.Fprintf(&b, "  - {name: icmp-%d, kind: icmp, target: 127.0.0.1, interval: 12s}\n", i)
		}
	}
	return b.String()
}

// countingTarget answers "ok" and counts GETs by User-Agent.
type countingTarget struct {
	*httptest.Server
	mu   sync.Mutex
	byUA map[string]int64
}

func newCountingTarget(t *testing.T) *countingTarget {
	c := &countingTarget{byUA: map[string]int64{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.byUA[r.UserAgent()]++
		c.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *countingTarget) count(ua string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byUA[ua]
}

// resultSink is a collector that accepts every valid batch.
type resultSink struct {
	*httptest.Server
	received atomic.Int64
}

func newResultSink(t *testing.T) *resultSink {
	s := &resultSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		rs, err := result.DecodeNDJSON(zr)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.received.Add(int64(len(rs)))
		io.WriteString(w, `{"accepted":`+strconv.Itoa(len(rs))+`}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func rssKiB(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
