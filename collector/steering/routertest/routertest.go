// Package routertest starts throwaway PowerDNS and HAProxy servers on free
// loopback ports for tests of pushing steering decisions to real routers.
package routertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/syncbuf"
)

// Install is the command that installs what this package starts.
const Install = "deploy/deps.sh pdns haproxy (apt-get install pdns-server pdns-backend-bind pdns-backend-geoip pdns-backend-sqlite3 sqlite3 haproxy)"

// need fails tb unless every program or file is there.
func need(tb testing.TB, what ...string) {
	tb.Helper()
	for _, w := range what {
		var err error
		if strings.HasPrefix(w, "/") {
			_, err = os.Stat(w)
		} else {
			_, err = exec.LookPath(w)
		}
		if err != nil {
			tb.Fatalf("routertest: %s is missing: install it with `%s`", w, Install)
		}
	}
}

// FreePort returns a loopback port that was free for both TCP and UDP a
// moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	tb.Fatal("routertest: no free loopback port")
	return 0
}

// process is a server started for a test; its output is kept for errors.
type process struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	exited chan struct{}
}

func start(tb testing.TB, name string, args ...string) *process {
	tb.Helper()
	p := &process{cmd: exec.Command(name, args...), out: &syncbuf.Buffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("routertest: cannot start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if tb.Failed() {
			tb.Logf("routertest: %s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// waitFor polls ready until it succeeds, the process exits or 15 s pass.
func (p *process) waitFor(tb testing.TB, what string, ready func(context.Context) error) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = ready(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			tb.Fatalf("routertest: %s exited before it was ready:\n%s", what, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	tb.Fatalf("routertest: %s not ready after 15s: %v\n%s", what, err, p.out.String())
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

var errNotYet = errors.New("not yet")

func dialOK(ctx context.Context, network, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotYet, err)
	}
	return c.Close()
}
