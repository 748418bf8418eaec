package faultkit

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CH is a ClickHouse server reached through its HTTP interface. The suite
// reads counts and alters tables this way, not through clickhouse-go, so
// that `make test`'s replay of every statement clickhouse-go sent (on
// ClickHouse 26.x) checks the product's SQL and not the faults' scaffolding.
type CH struct {
	Addr string // native protocol HOST:PORT, for the collectors
	HTTP string // HTTP interface HOST:PORT

	dir, script string // a server of our own (StartCH), else empty
}

// Query runs sql on database db and splits its TabSeparated answer.
func (c *CH) Query(db, sql string) ([][]string, error) {
	out, err := c.Exec(db, sql+"\nFORMAT TabSeparated")
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

// Exec runs sql on database db and returns its raw answer.
func (c *CH) Exec(db, sql string) (string, error) {
	u := "http://" + c.HTTP + "/?database=" + url.QueryEscape(db)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(u, "text/plain", strings.NewReader(sql))
	if err != nil {
		return "", fmt.Errorf("cannot reach ClickHouse at %s: %w", c.HTTP, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ClickHouse refused %q: %s", sql, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// Int runs sql, which answers one number.
func (c *CH) Int(db, sql string) (int, error) {
	out, err := c.Exec(db, sql)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// StartCH starts a ClickHouse server of the test's own with
// deploy/clickhouse/local.sh (script) in dir, for scenarios that stop it;
// it is stopped with tb.
func StartCH(tb testing.TB, script, dir string) *CH {
	tb.Helper()
	var out []byte
	var err error
	for try := 0; try < 2; try++ { // a free port it picked may be taken meanwhile
		cmd := exec.Command(script, "start", dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if out, err = cmd.Output(); err == nil {
			break
		}
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		tb.Fatalf("cannot start a ClickHouse of the suite's own: %s start %s: %v", script, dir, err)
	}
	httpAddr, err := os.ReadFile(filepath.Join(dir, "http_addr"))
	if err != nil {
		tb.Fatal(err)
	}
	c := &CH{Addr: strings.TrimSpace(string(out)), HTTP: strings.TrimSpace(string(httpAddr)), dir: dir, script: script}
	tb.Cleanup(func() { c.Stop(tb) })
	return c
}

// Stop stops a server StartCH started and waits for it to exit.
func (c *CH) Stop(tb testing.TB) {
	tb.Helper()
	if out, err := exec.Command(c.script, "stop", c.dir).CombinedOutput(); err != nil {
		tb.Errorf("cannot stop ClickHouse in %s: %v\n%s", c.dir, err, out)
	}
}

// Restart starts a stopped server again on the same ports and data (local.sh
// start would pick new ports), and waits until it answers.
func (c *CH) Restart(tb testing.TB) {
	tb.Helper()
	log, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("clickhouse-server", "--config-file="+filepath.Join(c.dir, "config.xml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("cannot restart ClickHouse: %v", err)
	}
	go cmd.Wait() // reap it when local.sh stop ends it
	if err := os.WriteFile(filepath.Join(c.dir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := c.Exec("default", "SELECT 1"); err == nil {
			return
		}
	}
	tb.Fatalf("ClickHouse in %s did not answer within 30s of its restart; see its server.log", c.dir)
}
