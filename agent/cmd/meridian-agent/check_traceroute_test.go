package main

import (
	"context"
	"os"
	"regexp"
	"testing"
)

// `check traceroute` prints the result's rows, then an mtr-like table: one
// line per hop with loss, sent, received and best/avg/worst/stdev.
func TestCheckTracerouteTable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("traceroute over TCP needs raw sockets: run as root (make test does)")
	}
	out, errs, code := runCLI(t, context.Background(), "check", "--tcp", "--port", "1", "--probes", "4", "traceroute", "127.0.0.1")
	if code != 0 {
		t.Fatalf("got exit %d (%s), want 0\n%s", code, errs, out)
	}
	for _, want := range []string{`kind +traceroute`, `result +ok`, `trace +tcp/1, 1 hops, destination reached`,
		` +hop +host +loss% +snt +rcv +best +avg +worst +stdev`, ` +1\. +127\.0\.0\.1 +0\.0% +4 +4 +\d+\.\d +\d+\.\d +\d+\.\d +\d+\.\d`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Errorf("got\n%s\nwant a line matching %q", out, want)
		}
	}
}

func TestCheckTracerouteUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--udp", "--tcp", "traceroute", "x"}, "--udp and --tcp: pick one"},
		{[]string{"check", "--port", "80", "traceroute", "x"}, "traceroute: port 80 makes no sense for protocol icmp"},
		{[]string{"check", "--max-hops", "300", "traceroute", "x"}, "traceroute: max_hops 300 is out of range"},
	} {
		_, errs, code := runCLI(t, context.Background(), tc.args...)
		if code != 2 || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(errs) {
			t.Errorf("%v: got exit %d, stderr %q; want exit 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}
