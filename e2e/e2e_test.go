// Package e2e tests Meridian across its parts: real agent and collector
// processes, built from this tree, against the real ClickHouse that
// `make test` starts.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds meridian and meridian-agent once per test run.
func binaries(t *testing.T) (collector, agent string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "meridian-e2e-bin")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"./collector/cmd/meridian", "./agent/cmd/meridian-agent"} {
			out, err := exec.Command("go", "build", "-o", binDir, "../"+strings.TrimPrefix(pkg, "./")).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "meridian"), filepath.Join(binDir, "meridian-agent")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// meridian runs the collector binary to completion and returns its stdout.
func meridian(t *testing.T, bin, db string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MERIDIAN_CLICKHOUSE="+chtest.Addr(t), "MERIDIAN_DATABASE="+db)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("meridian %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// start runs a long-lived process, logging its output, and stops it with
// SIGTERM at cleanup, failing the test if it does not exit cleanly.
func start(t *testing.T, name string, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw, _ := os.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			t.Logf("[%s] %s", name, sc.Text())
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s did not exit cleanly on SIGTERM: %v", name, err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s did not stop within 15s of SIGTERM", name)
		}
	})
	return cmd
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 20s", url)
}

// TestAgentToClickHouseToQuery is the spine: an agent measures a local
// target, ships to the collector, the collector stores in ClickHouse, and
// the query CLI shows the latency table.
func TestAgentToClickHouseToQuery(t *testing.T) {
	collector, agent := binaries(t)
	db := fmt.Sprintf("e2e_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		exec.Command("clickhouse-client", "--host", strings.Split(chtest.Addr(t), ":")[0],
			"--port", strings.Split(chtest.Addr(t), ":")[1], "--query", "DROP DATABASE IF EXISTS "+db).Run()
	})

	if out := meridian(t, collector, db, "migrate"); !strings.Contains(out, "up to date") {
		t.Fatalf("migrate said %q", out)
	}
	out := meridian(t, collector, db, "agents", "add", "e2e-1", "--region", "test-region")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "mrd_") {
		t.Fatalf("agents add: last line %q is not a token", token)
	}

	listen := freeAddr(t)
	start(t, "collector", []string{"MERIDIAN_CLICKHOUSE=" + chtest.Addr(t), "MERIDIAN_DATABASE=" + db},
		collector, "serve", "--listen", listen, "--flush-interval", "50ms", "--spool-dir", filepath.Join(t.TempDir(), "spool"))
	waitHTTP(t, "http://"+listen+"/readyz")

	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		fmt.Fprintln(w, "hello from the demo target")
	}))
	defer target.Close()
	dir := t.TempDir()
	config := filepath.Join(dir, "agent.yml")
	os.WriteFile(config, []byte(fmt.Sprintf(`agent: {name: e2e-1, region: test-region}
ship: {interval: 200ms}
checks:
  - {name: demo, kind: http, target: %q, interval: 1s}
  - {name: down, kind: http, target: "http://%s/", interval: 1s}
`, target.URL+"/", freeAddr(t))), 0o644)
	start(t, "agent", []string{"MERIDIAN_TOKEN=" + token, "MERIDIAN_COLLECTOR=http://" + listen},
		agent, "run", "--config", config, "--data-dir", filepath.Join(dir, "data"))

	// Wait for at least 3 results of each check to be queryable.
	var rows []map[string]any
	deadline := time.Now().Add(45 * time.Second)
	for {
		js := meridian(t, collector, db, "query", "latency", "--since", "10m", "--by", "region,check", "--format", "json")
		rows = nil
		if err := json.Unmarshal([]byte(js), &rows); err != nil {
			t.Fatalf("query --format json gave %q: %v", js, err)
		}
		if len(rows) == 2 && rows[0]["n"].(float64) >= 3 && rows[1]["n"].(float64) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("results did not arrive within 45s; query says %v", rows)
		}
		time.Sleep(500 * time.Millisecond)
	}
	demo, down := rows[0], rows[1]
	if demo["check"] != "demo" || demo["region"] != "test-region" || demo["failed"].(float64) != 0 {
		t.Errorf("demo row: got %v, want region test-region, no failures", demo)
	}
	if p50, ok := demo["p50_ms"].(float64); !ok || p50 < 20 || p50 > 2000 {
		t.Errorf("demo p50: got %v, want ≥ 20 ms (the target sleeps 20 ms)", demo["p50_ms"])
	}
	if down["failed"] != down["n"] || down["p50_ms"] != nil {
		t.Errorf("down row: got %v, want every result failed and no latency", down)
	}

	if list := meridian(t, collector, db, "agents", "list"); !strings.Contains(list, "e2e-1") || strings.Contains(list, "never") {
		t.Errorf("agents list does not show e2e-1 as seen:\n%s", list)
	}

	table := meridian(t, collector, db, "query", "latency", "--since", "10m", "--by", "region,target")
	if !strings.Contains(table, "p99_ms") || !strings.Contains(table, target.URL) || !strings.Contains(table, "test-region") {
		t.Errorf("latency table lacks the target or region:\n%s", table)
	}
	t.Logf("latency table:\n%s", table)

	// Stored with the error class that says where it failed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cls, err := exec.CommandContext(ctx, "clickhouse-client", "--host", "127.0.0.1", "--port", strings.Split(chtest.Addr(t), ":")[1],
		"--database", db, "--query", "SELECT DISTINCT error FROM results WHERE check_name = 'down'").Output()
	if err != nil || strings.TrimSpace(string(cls)) != "connect_refused" {
		t.Errorf("down check error classes: got %q (%v), want connect_refused", cls, err)
	}
}
