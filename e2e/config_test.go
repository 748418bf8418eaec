package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestRemoteConfigReachesRunningAgent: an agent runs one check from its
// file; `meridian agents config set` adds a second; the running agent
// picks it up from GET /v1/agent/config without a restart, its results
// reach ClickHouse, and `meridian agents list` shows the agent's version
// from its heartbeat.
func TestRemoteConfigReachesRunningAgent(t *testing.T) {
	collector, agent := binaries(t)
	db := fmt.Sprintf("e2e_cfg_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		exec.Command("clickhouse-client", "--host", strings.Split(chtest.Addr(t), ":")[0],
			"--port", strings.Split(chtest.Addr(t), ":")[1], "--query", "DROP DATABASE IF EXISTS "+db).Run()
	})
	meridian(t, collector, db, "migrate")
	out := meridian(t, collector, db, "agents", "add", "cfg-1", "--region", "test-region")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]

	listen := freeAddr(t)
	start(t, "collector", []string{"MERIDIAN_CLICKHOUSE=" + chtest.Addr(t), "MERIDIAN_DATABASE=" + db},
		collector, "serve", "--listen", listen, "--flush-interval", "50ms", "--spool-dir", filepath.Join(t.TempDir(), "spool"))
	waitHTTP(t, "http://"+listen+"/readyz")

	var hits [2]atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/one":
			hits[0].Add(1)
		case "/two":
			hits[1].Add(1)
		}
		fmt.Fprintln(w, "ok")
	}))
	defer target.Close()

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("agent: {name: cfg-1}\nship: {interval: 200ms}\nchecks:\n  - {name: one, kind: http, target: %q, interval: 1s}\n",
		target.URL+"/one")), 0o644)
	start(t, "agent", []string{"MERIDIAN_TOKEN=" + token, "MERIDIAN_COLLECTOR=http://" + listen},
		agent, "run", "--config", cfgFile, "--data-dir", filepath.Join(dir, "data"), "--config-poll", "1s")

	conn, err := store.Open(context.Background(), store.Options{Addr: chtest.Addr(t), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	count := func(check string) uint64 {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM results WHERE check_name = ?", check).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitUntil(t, 30*time.Second, "results of the file's check", func() bool { return count("one") >= 2 })

	// A bad document is refused before it is stored, naming file:line.
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("checks:\n  - name: two\n    kind: http\n    targett: http://x/\n"), 0o644)
	cmd := exec.Command(collector, "agents", "config", "set", "cfg-1", "--file", bad)
	cmd.Env = append(os.Environ(), "MERIDIAN_CLICKHOUSE="+chtest.Addr(t), "MERIDIAN_DATABASE="+db)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), bad+`:4: unknown field "targett"`) {
		t.Errorf("config set with a typo: got %v, stderr %q; want a failure naming %s:4", err, stderr.String(), bad)
	}

	checks := filepath.Join(dir, "checks.yml")
	doc := fmt.Sprintf("checks:\n  - {name: two, kind: http, target: %q, interval: 1s}\n", target.URL+"/two")
	os.WriteFile(checks, []byte(doc), 0o644)
	set := time.Now()
	if out := meridian(t, collector, db, "agents", "config", "set", "cfg-1", "--file", checks); !strings.Contains(out, "config version 1 set, 1 checks") {
		t.Errorf("config set said %q", out)
	}
	if out := meridian(t, collector, db, "agents", "config", "show", "cfg-1"); out != doc {
		t.Errorf("config show: got %q, want the document", out)
	}
	oneBefore := hits[0].Load()
	waitUntil(t, 15*time.Second, "results of the remote check in ClickHouse", func() bool { return count("two") >= 1 })
	t.Logf("the remote check's first result reached ClickHouse %v after config set", time.Since(set).Round(time.Millisecond))
	if hits[0].Load() <= oneBefore {
		t.Errorf("the file's check stopped running after the update")
	}

	list := meridian(t, collector, db, "agents", "list")
	row := listRow(t, list, "cfg-1")
	if row["version"] != "dev" || row["last heartbeat"] == "-" || row["last heartbeat"] == "" || row["spool"] == "-" {
		t.Errorf("agents list: got %v, want version dev (the test build) from a heartbeat, and a spool depth\n%s", row, list)
	}
	t.Logf("agents list:\n%s", list)
}

// listRow parses `meridian agents list` (columns at least two spaces apart)
// into header -> value for the named agent.
func listRow(t *testing.T, list, name string) map[string]string {
	t.Helper()
	sep := regexp.MustCompile(`\s{2,}`)
	lines := strings.Split(strings.TrimSpace(list), "\n")
	header := sep.Split(strings.TrimSpace(lines[0]), -1)
	for _, l := range lines[1:] {
		fields := sep.Split(strings.TrimSpace(l), -1)
		if len(fields) == len(header) && fields[0] == name {
			row := map[string]string{}
			for i, h := range header {
				row[h] = fields[i]
			}
			return row
		}
	}
	t.Fatalf("agents list has no row for %s:\n%s", name, list)
	return nil
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
