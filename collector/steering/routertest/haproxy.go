package routertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// HAProxyServer is one server of the test backend, by name and address.
type HAProxyServer struct{ Name, Addr string }

// HA is a running HAProxy.
type HA struct {
	URL        string // the frontend, http://127.0.0.1:PORT
	Socket     string // "unix:…/admin.sock", the runtime API at level admin
	RuntimeTCP string // "tcp:127.0.0.1:PORT", the same over TCP
}

// HAProxy starts haproxy under tb.TempDir() with one HTTP frontend whose
// default backend (named backend, balance roundrobin, every server at
// weight 100) holds servers.
func HAProxy(tb testing.TB, backend string, servers []HAProxyServer) *HA {
	tb.Helper()
	need(tb, "haproxy")
	dir := tb.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	front, runtime := FreePort(tb), FreePort(tb)
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s level admin
    stats socket ipv4@127.0.0.1:%d level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:%d
    default_backend %s
backend %s
    balance roundrobin
`, sock, runtime, front, backend, backend)
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s %s weight 100\n", s.Name, s.Addr)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	writeFile(tb, cfg, b.String())
	h := &HA{
		URL:        "http://127.0.0.1:" + strconv.Itoa(front),
		Socket:     "unix:" + sock,
		RuntimeTCP: "tcp:127.0.0.1:" + strconv.Itoa(runtime),
	}
	proc := start(tb, "haproxy", "-db", "-f", cfg)
	proc.waitFor(tb, "haproxy", func(ctx context.Context) error {
		if err := dialOK(ctx, "unix", sock); err != nil {
			return err
		}
		return dialOK(ctx, "tcp", strings.TrimPrefix(h.RuntimeTCP, "tcp:"))
	})
	return h
}

// Backends starts one HTTP server per name answering its name, for an
// HAProxy backend's servers.
func Backends(tb testing.TB, names ...string) []HAProxyServer {
	tb.Helper()
	var out []HAProxyServer
	for _, n := range names {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, n)
		}))
		tb.Cleanup(srv.Close)
		out = append(out, HAProxyServer{Name: n, Addr: strings.TrimPrefix(srv.URL, "http://")})
	}
	return out
}
