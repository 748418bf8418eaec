package faultkit

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

	// A server of the test's own (StartCH): its directory and process.
	dir  string
	proc *os.Process
	done chan struct{}
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

// StartCH starts a ClickHouse server of the test's own in dir, for
// scenarios that stop it, from the config templates `local.sh start` uses
// (in deployDir) but on ports below the kernel's ephemeral range: a
// restart must get the same ports back, and while the server is down any
// outgoing connection may take an ephemeral one. It is stopped with tb.
func StartCH(tb testing.TB, deployDir, dir string) *CH {
	tb.Helper()
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			tb.Fatal(err)
		}
	}
	c := &CH{Addr: FreeAddr(tb), dir: dir}
	for c.HTTP = FreeAddr(tb); c.HTTP == c.Addr; c.HTTP = FreeAddr(tb) {
	}
	tmpl, err := os.ReadFile(filepath.Join(deployDir, "local-config.xml"))
	if err != nil {
		tb.Fatal(err)
	}
	config := strings.NewReplacer("@DIR@", dir, "@TCP_PORT@", port(c.Addr), "@HTTP_PORT@", port(c.HTTP)).Replace(string(tmpl))
	users, err := os.ReadFile(filepath.Join(deployDir, "local-users.xml"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "users.xml"), users, 0o640)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o640)
	}
	if err != nil {
		tb.Fatal(err)
	}
	c.launch(tb)
	tb.Cleanup(c.kill) // its data goes with the test: no need to wait for a clean stop
	return c
}

func (c *CH) kill() {
	if c.proc != nil {
		c.proc.Kill()
		<-c.done
		c.proc = nil
	}
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// launch starts the server and waits until it answers.
func (c *CH) launch(tb testing.TB) {
	tb.Helper()
	log, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("clickhouse-server", "--config-file="+filepath.Join(c.dir, "config.xml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("cannot start ClickHouse (deploy/deps.sh clickhouse installs it): %v", err)
	}
	c.proc, c.done = cmd.Process, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(c.done)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-c.done:
			b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			tb.Fatalf("ClickHouse in %s exited at start:\n%s", c.dir, lastLines(string(b), 10))
		default:
		}
		if _, err := c.Exec("default", "SELECT 1"); err == nil {
			return
		}
	}
	tb.Fatalf("ClickHouse in %s did not answer within a minute of its start; see its server.log", c.dir)
}

// Stop stops a server StartCH started (SIGTERM, SIGKILL after 30 s) and
// waits for it to exit.
func (c *CH) Stop(tb testing.TB) {
	tb.Helper()
	if c.proc == nil {
		return
	}
	c.proc.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.proc.Kill()
		<-c.done
	}
	c.proc = nil
}

// Restart starts a stopped server again, on the same ports and data.
func (c *CH) Restart(tb testing.TB) {
	tb.Helper()
	c.launch(tb)
}

// FreeAddr returns a free loopback address below the kernel's ephemeral
// ports (32768 and up), for a server a test starts, and may restart, on
// it: a port the kernel handed out once (a listener on :0) can be taken by
// any outgoing connection before the server binds it, which a busy machine
// does.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	tb.Fatal("no free port in 20000-31999")
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
