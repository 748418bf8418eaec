package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/hostnoise"
	"github.com/meridian-net/meridian/agent/spool"
	"github.com/meridian-net/meridian/internal/result"
	"github.com/meridian-net/meridian/internal/syncbuf"
)

// The collector is down (503, Retry-After) for a while; the agent keeps
// measuring into its spool, and once the collector is back every result
// arrives: as many distinct ids as measurements, none missing.
func TestRunCollectorOutageLosesNothing(t *testing.T) {
	start := time.Now()
	tg := newTargets(t)
	col, colURL := newCollector(t)
	var down atomic.Bool
	down.Store(true)
	col.setAnswer(func(w http.ResponseWriter, r *http.Request, rs []result.Result) bool {
		if down.Load() {
			return unavailable(1)(w, r, rs)
		}
		return true
	})
	dir := t.TempDir()
	var checks []string
	for i := range 4 {
		checks = append(checks, fmt.Sprintf("{name: c%d, kind: http, target: %q, interval: 1s}", i, tg.URL+"/"))
	}
	cfg := writeConfig(t, dir, "cli-test", checks...)
	t.Setenv("MERIDIAN_TOKEN", testToken)
	t.Setenv("MERIDIAN_DATA_DIR", filepath.Join(dir, "data"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var stderr syncbuf.Buffer
	go func() {
		done <- run(ctx, []string{"meridian-agent", "run", "--config", cfg, "--collector", colURL,
			"--metrics-listen", "127.0.0.1:0"}, io.Discard, &stderr)
	}()

	waitFor(t, 10*time.Second, "results to pile up while the collector is down",
		func() bool { return tg.total() >= 8 }, &stderr)
	if ids, _ := col.received(); len(ids) != 0 {
		t.Fatalf("collector accepted %d results while down", len(ids))
	}
	down.Store(false)
	waitFor(t, 10*time.Second, "the backlog to arrive", func() bool {
		ids, _ := col.received()
		return len(ids) >= 12
	}, &stderr)
	scrapeMetrics(t, &stderr)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, &stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not stop after cancel\n%s", &stderr)
	}

	ids, total := col.received()
	produced := tg.total() // every run is one request, and a graceful stop keeps every result
	if len(ids) != produced || col.badTok != 0 {
		t.Errorf("got %d distinct ids (%d with duplicates, %d bad tokens), want %d: one per measurement", len(ids), total, col.badTok, produced)
	}
	if sp, err := spool.Open(filepath.Join(dir, "data", "spool"), spool.Options{}); err != nil {
		t.Errorf("cannot reopen the spool: %v", err)
	} else {
		if sp.Len() != 0 {
			t.Errorf("got %d results left in the spool, want 0 after a stop with the collector up", sp.Len())
		}
		sp.Close()
	}
	checkHostNoise(t, col)
	log := stderr.String()
	for _, want := range []string{"meridian-agent started", "checks=4", "collector=" + colURL, "shipping results again", "msg=stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("got log\n%s\nwant it to contain %q", log, want)
		}
	}
	t.Logf("%d results through a collector outage in %v", produced, time.Since(start).Round(time.Millisecond))
}

// checkHostNoise wants every result to carry what this host can tell.
func checkHostNoise(t *testing.T, col *fakeCollector) {
	t.Helper()
	s := hostnoise.New(hostnoise.Options{})
	s.Sample()
	here := s.Host()
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, r := range col.got {
		if here != nil && here.ClockSynced != nil && r.ClockSynced == nil {
			t.Fatalf("result %s has no clock_synced, though this host can read it (%v)", r.ID, *here.ClockSynced)
		}
		if r.CPUStealPct != nil && (*r.CPUStealPct < 0 || *r.CPUStealPct > 100) {
			t.Fatalf("result %s has cpu_steal_pct %v", r.ID, *r.CPUStealPct)
		}
	}
}

var metricsAddrRE = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// scrapeMetrics reads /metrics from the running agent and wants the agent's
// own series there.
func scrapeMetrics(t *testing.T, log fmt.Stringer) {
	t.Helper()
	m := metricsAddrRE.FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", log)
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`meridian_agent_spool_bytes `, `meridian_agent_spool_results `, `meridian_agent_spool_dropped_total `,
		`meridian_agent_ship_duration_seconds_bucket{vmrange=`, `meridian_agent_ship_posts_failed_total `,
		`meridian_agent_checks_total{kind="http",result="ok"} `, `meridian_agent_config_version `,
		`meridian_agent_config_checks 4`, `meridian_agent_build_info{version="dev"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
}
