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
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// TestAgentFootprint is the agent's resource benchmark behind `make bench`:
// one agent with 200 checks a minute (http, dns, tcp, tls, icmp mixed)
// against loopback targets, shipping to a collector that accepts everything;
// it prints peak and final RSS and CPU use. A report, not a pass/fail test:
// it runs only with MERIDIAN_BENCH=1 (MERIDIAN_BENCH_DURATION, default 3m).
func TestAgentFootprint(t *testing.T) {
	if os.Getenv("MERIDIAN_BENCH") == "" {
		t.Skip("a benchmark, not a test: run with MERIDIAN_BENCH=1 (make bench)")
	}
	dur := 3 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("MERIDIAN_BENCH_DURATION")); err == nil {
		dur = d
	}
	// The binary users run: static and stripped, as `make build` makes it.
	agent := filepath.Join(t.TempDir(), "meridian-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", agent, "../agent/cmd/meridian-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var received atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		received.Add(int64(len(rs)))
		io.WriteString(w, `{"accepted":`+strconv.Itoa(len(rs))+`}`)
	}))
	defer sink.Close()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer web.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer tlsSrv.Close()
	resolver := dnsServer(t, "bench.test. 60 IN A 127.0.0.1")

	// 40 checks every 12s = 200 checks a minute.
	var b strings.Builder
	b.WriteString("agent: {name: bench, region: lab}\nship: {interval: 1s}\nchecks:\n")
	for i := 0; i < 40; i++ {
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
	config := filepath.Join(t.TempDir(), "bench.yml")
	os.WriteFile(config, []byte(b.String()), 0o644)
	cmd := start(t, "agent", []string{"MERIDIAN_TOKEN=bench", "MERIDIAN_COLLECTOR=" + sink.URL}, agent,
		"run", "--config", config, "--data-dir", filepath.Join(t.TempDir(), "data"))
	pid := cmd.Process.Pid

	began := time.Now()
	cpu0 := cpuTicks(t, pid)
	var peak, last int64
	for time.Since(began) < dur {
		time.Sleep(5 * time.Second)
		last = rssKiB(t, pid)
		peak = max(peak, last)
	}
	cpu := float64(cpuTicks(t, pid)-cpu0) / 100 / time.Since(began).Seconds() * 100 // USER_HZ = 100
	st, _ := os.Stat(agent)
	fmt.Printf("\nagent footprint: 200 checks/min (http, dns, tcp, tls, icmp) for %v\n", dur.Round(time.Second))
	fmt.Printf("  results shipped   %d\n", received.Load())
	fmt.Printf("  RSS peak / last   %.1f MiB / %.1f MiB\n", float64(peak)/1024, float64(last)/1024)
	fmt.Printf("  CPU               %.2f%% of one core\n", cpu)
	fmt.Printf("  binary            %.1f MiB (static, stripped)\n", float64(st.Size())/(1<<20))
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
