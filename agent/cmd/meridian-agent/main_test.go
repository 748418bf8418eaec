package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// runCLI runs the program in-process and returns its output and exit status.
func runCLI(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	err := run(ctx, append([]string{"meridian-agent"}, args...), &out, &errw)
	if err != nil {
		code = exitCode(err)
		errw.WriteString(err.Error())
	}
	return out.String(), errw.String(), code
}

func target(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/500" {
			http.Error(w, "boom", 500)
			return
		}
		fmt.Fprint(w, "hello")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCheckTable(t *testing.T) {
	url := target(t)
	out, errs, code := runCLI(t, context.Background(), "check", "http", url+"/")
	if code != 0 {
		t.Fatalf("got exit %d (%s), want 0", code, errs)
	}
	for _, want := range []string{`kind +http`, `result +ok`, `status +200`, `proto +HTTP/1.1`, `remote ip +127.0.0.1`, `ttfb +\d+\.\d\d ms`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Errorf("got table\n%s\nwant a row matching %q", out, want)
		}
	}
	if regexp.MustCompile(`(?m)^(dns|tls) +\d`).MatchString(out) {
		t.Errorf("got table\n%s\nwant no dns or tls rows for http to an IP", out)
	}
}

func TestCheckJSON(t *testing.T) {
	url := target(t)
	// Flags after the arguments work too.
	out, errs, code := runCLI(t, context.Background(), "check", "http", url+"/500", "--json", "--timeout", "5s")
	if code != 1 {
		t.Errorf("got exit %d, want 1 for a failed measurement", code)
	}
	if !strings.Contains(errs, "measurement failed: http_status") {
		t.Errorf("got stderr %q, want it to name the error class", errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1:\n%s", len(lines), out)
	}
	var r result.Result
	if err := result.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("output is not a valid result: %v\n%s", err, out)
	}
	if r.Kind != "http" || r.HTTP == nil || r.HTTP.Status != 500 || r.Error != result.ErrHTTPStatus {
		t.Errorf("got %+v, want an http result with status 500", r)
	}
}

func TestUsageErrors(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "none.pem")
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"check"}, "check needs KIND and TARGET", 2},
		{[]string{"check", "http"}, "check needs KIND and TARGET", 2},
		{[]string{"check", "smtp", "x"}, `unknown kind "smtp": use one of dns, tcp`, 2},
		{[]string{"check", "http", "example.com"}, "want an absolute http:// or https:// URL", 2},
		{[]string{"check", "--bogus", "http", "http://x/"}, "flag provided but not defined: -bogus", 2},
		{[]string{"check", "--resolver", "1.1.1.1", "http", "http://x/"}, "want HOST:PORT", 2},
		{[]string{"check", "http", "http://127.0.0.1:1/", "--ca", ca}, "cannot read ca_file", 2},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, 2},
		{[]string{"run"}, "run needs --config FILE", 2},
		{[]string{"check-config", "--config", "../../config/testdata/invalid-timeout.yml"}, "invalid-timeout.yml:6: checks[0] (demo): timeout 15s", 1},
		{[]string{"run", "--config", "../../testdata/local.yml", "--collector", "nope"}, `collector "nope" is not an http(s) URL`, 2},
	} {
		_, errs, code := runCLI(t, context.Background(), tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: got exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

func TestVersionAndCheckConfig(t *testing.T) {
	out, _, code := runCLI(t, context.Background(), "version")
	if code != 0 || out != fmt.Sprintf("meridian-agent dev (result contract v%d)\n", result.Version) {
		t.Errorf("got %q exit %d", out, code)
	}
	out, errs, code := runCLI(t, context.Background(), "check-config", "--config", "../../testdata/local.yml")
	if code != 0 || !strings.Contains(out, `ok: agent "local-1", 1 checks, collector http://127.0.0.1:8080`) {
		t.Errorf("got %q %q exit %d", out, errs, code)
	}
}

// collector counts the results it is sent, checking the token.
type collector struct {
	mu     sync.Mutex
	n      int
	ids    map[string]bool
	badTok int
	got    chan struct{}
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer tok-1" {
		c.badTok++
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
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
	for _, res := range rs {
		if res.Agent != "cli-test" || res.Check != "demo" {
			http.Error(w, "wrong agent or check", 400)
			return
		}
		c.ids[res.ID] = true
	}
	c.n += len(rs)
	if c.n > 0 {
		select {
		case c.got <- struct{}{}:
		default:
		}
	}
}

func TestRunShipsAndStops(t *testing.T) {
	col := &collector{ids: map[string]bool{}, got: make(chan struct{}, 1)}
	srv := httptest.NewServer(col)
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`agent: {name: cli-test}
collector: http://127.0.0.1:1/ # overridden by --collector
ship: {interval: 50ms}
checks:
  - {name: demo, kind: http, target: %q, interval: 1s}
`, target(t)+"/")), 0o600)
	t.Setenv("MERIDIAN_TOKEN", "tok-1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"meridian-agent", "run", "--config", cfg, "--collector", srv.URL,
			"--data-dir", filepath.Join(dir, "data"), "--metrics-listen", "127.0.0.1:0"}, &bytes.Buffer{}, &stderr)
	}()
	select {
	case <-col.got:
	case err := <-done:
		t.Fatalf("run returned early: %v\n%s", err, &stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("collector got no results\n%s", &stderr)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.badTok != 0 || col.n < 1 || len(col.ids) != col.n {
		t.Errorf("got %d results, %d distinct, %d bad tokens; want at least 1, no duplicates, none bad", col.n, len(col.ids), col.badTok)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("data dir not created: %v", err)
	}
	log := stderr.String()
	if !strings.Contains(log, "meridian-agent started") || !strings.Contains(log, "checks=1") || !strings.Contains(log, "collector="+srv.URL) {
		t.Errorf("got log\n%s\nwant a start line with the check count and the collector", log)
	}
}
