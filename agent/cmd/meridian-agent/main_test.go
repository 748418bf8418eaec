package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/result"
)

// runCLI runs the program in-process and returns its output and exit status.
func runCLI(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	err := run(ctx, append([]string{"meridian-agent"}, args...), &out, &errw)
	if err != nil {
		code = cliutil.ExitCode(err)
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
		{[]string{"run", "--config", "../../testdata/local.yml", "--stop-timeout", "0s"}, `--stop-timeout 0s must be positive`, 2},
	} {
		_, errs, code := runCLI(t, context.Background(), tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: got exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

func TestVersionAndCheckConfig(t *testing.T) {
	out, _, code := runCLI(t, context.Background(), "version")
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("meridian-agent dev (result contract v%d, commit ", result.Version)) || !strings.Contains(out, runtime.Version()) {
		t.Errorf("got %q exit %d", out, code)
	}
	out, errs, code := runCLI(t, context.Background(), "check-config", "--config", "../../testdata/local.yml")
	if code != 0 || !strings.Contains(out, `ok: agent "local-1", 1 checks, collector http://127.0.0.1:8080`) {
		t.Errorf("got %q %q exit %d", out, errs, code)
	}
}
