package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestNothingLostAcrossOutagesAndKill9: the collector goes away for a while
// and the agent is killed with SIGKILL; once both are back every result
// reaches ClickHouse exactly once. The target counts its requests, and each
// http check run makes exactly one, so "produced" is known independently of
// the agent.
func TestNothingLostAcrossOutagesAndKill9(t *testing.T) {
	collector, agent := binaries(t)
	o, conn := chtest.New(t)
	ctx := context.Background()
	token, err := store.AddAgent(ctx, conn, "outage-1", "lab")
	if err != nil {
		t.Fatal(err)
	}
	var hits, lastHit atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		lastHit.Store(time.Now().UnixNano())
		fmt.Fprint(w, "ok")
	}))
	defer target.Close()

	listen := freeAddr(t)
	spool := filepath.Join(t.TempDir(), "collector-spool")
	serve := func() *exec.Cmd {
		c := exec.Command(collector, "serve", "--listen", listen, "--flush-interval", "50ms", "--spool-dir", spool)
		c.Env = append(os.Environ(), "MERIDIAN_CLICKHOUSE="+o.Addr, "MERIDIAN_DATABASE="+o.Database)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		waitHTTP(t, "http://"+listen+"/readyz")
		return c
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "agent.yml")
	os.WriteFile(config, []byte(fmt.Sprintf(`agent: {name: outage-1, region: lab}
ship: {interval: 200ms}
checks:
  - {name: a, kind: http, target: %q, interval: 1s}
  - {name: b, kind: http, target: %q, interval: 1s}
`, target.URL+"/a", target.URL+"/b")), 0o644)
	runAgent := func() *exec.Cmd {
		c := exec.Command(agent, "run", "--config", config, "--data-dir", filepath.Join(dir, "data"), "--config-poll", "0")
		c.Env = append(os.Environ(), "MERIDIAN_TOKEN="+token, "MERIDIAN_COLLECTOR=http://"+listen)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	stop := func(c *exec.Cmd, sig syscall.Signal) {
		c.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			c.Process.Kill()
			t.Errorf("%s did not stop on %v within 15s", c.Path, sig)
		}
	}

	col := serve()
	ag := runAgent()
	time.Sleep(3 * time.Second)
	stop(col, syscall.SIGTERM) // the collector goes away; the agent keeps measuring
	time.Sleep(4 * time.Second)
	// A result measured but not yet on disk when the agent dies is lost by
	// definition, so kill between runs: once the target has been quiet for
	// 150 ms, every run it served has long been spooled.
	for time.Since(time.Unix(0, lastHit.Load())) < 150*time.Millisecond {
		time.Sleep(5 * time.Millisecond)
	}
	stop(ag, syscall.SIGKILL) // the agent dies without a chance to flush
	ag = runAgent()           // it comes back with the same data dir
	time.Sleep(2 * time.Second)
	col = serve() // and so does the collector
	time.Sleep(2 * time.Second)
	stop(ag, syscall.SIGTERM)
	produced := hits.Load()

	deadline := time.Now().Add(30 * time.Second)
	var stored, rows uint64
	for {
		conn.QueryRow(ctx, "SELECT count() FROM results FINAL").Scan(&stored)
		if stored >= uint64(produced) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop(col, syscall.SIGTERM)
	conn.QueryRow(ctx, "SELECT count() FROM results").Scan(&rows)
	t.Logf("target saw %d requests; ClickHouse has %d results (%d rows before folding replays)", produced, stored, rows)
	if produced < 10 {
		t.Fatalf("only %d measurements were made; the test did not exercise anything", produced)
	}
	if stored != uint64(produced) {
		t.Errorf("got %d results in ClickHouse, want %d (one per request the target saw)", stored, produced)
	}
}
