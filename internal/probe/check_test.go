package probe

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

func TestKindsRegistered(t *testing.T) {
	ks := Kinds()
	if len(ks) != len(kinds) {
		t.Errorf("got %d registered kinds, want %d (%v)", len(kinds), len(ks), ks)
	}
	for _, k := range ks {
		if _, ok := kinds[k]; !ok {
			t.Errorf("kind %s is not registered", k)
		}
	}
	if !slices.Equal(ks[:len(result.Kinds)], result.Kinds) || ks[len(ks)-1] != KindCDN {
		t.Errorf("got kinds %v, want the result kinds then cdn", ks)
	}
}

// The agent's file and remote documents are held to the same rules
// (agent/config tests every message); this is the collector's side, which
// runs no probe.
func TestParseChecks(t *testing.T) {
	cs, err := ParseChecks("remote", []byte("checks:\n  - {name: a, kind: browser, target: \"https://example.com/\"}\n  - {name: b, kind: dns, target: example.com, interval: 10s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Interval != DefaultInterval || cs[0].Timeout != 48*time.Second || cs[1].Timeout != 8*time.Second {
		t.Errorf("got %+v, want two checks with the defaults", cs)
	}
	for _, tc := range []struct{ doc, want string }{
		{"", "remote: the document is empty"},
		{"- a\n", "remote:1: want a mapping"},
		{"ship: {batch: 1}\nchecks: []\n", `remote:1: unknown field "ship"`},
		{"checks: []\n", "remote:1: no checks: add at least one under checks:"},
		{"checks:\n  - name: a\n    kind: tcp\n    targte: x\n", `remote:4: unknown field "targte" in probe.Check (check the spelling and the indentation)`},
		{"checks:\n  - {name: a, kind: smtp, target: x}\n", `remote:2: checks[0] (a): unknown kind "smtp" (want one of dns, tcp, tls, http, icmp, browser, traceroute, cdn)`},
		{"checks:\n  - {name: a, kind: tcp, target: \"x:1\"}\n  - {name: a, kind: tcp, target: \"x:2\"}\n", `remote:3: checks[1] (a): name "a" is already used by checks[0]; names must be unique`},
		{"checks:\n  - name: a\n    kind: http\n    target: example.com\n", `remote:4: checks[0] (a): cannot use http target "example.com": want an absolute http:// or https:// URL`},
		{"checks:\n  - {name: a, kind: cdn}\n  - {kind: tcp, target: \"x:1\"}\n", `remote:3: checks[1]: name must not be empty`},
	} {
		_, err := ParseChecks("remote", []byte(tc.doc), nil)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error starting %q", tc.doc, err, tc.want)
		}
	}
}

func TestValidateRunnable(t *testing.T) {
	c := Check{Name: "page", Kind: result.KindBrowser, Target: "https://example.com/"}
	c.SetDefaults(".")
	if err := c.Validate(nil); err != nil {
		t.Errorf("without a probe registry: got %v, want no error", err)
	}
	err := c.Validate(func(kind string) bool { return kind != result.KindBrowser })
	fe, ok := err.(*FieldError)
	if !ok || fe.Key != "kind" || err.Error() != `kind "browser" has no probe in this build` {
		t.Errorf("got %#v, want a FieldError on kind saying the build has no probe", err)
	}
}

// A traceroute check's options are validated where the collector can do it
// too: each message names the key and the fix.
func TestValidateTraceroute(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name   string
		target string
		o      TracerouteOptions
		want   string // "" = valid
	}{
		{"defaults", "example.com", TracerouteOptions{}, ""},
		{"tcp 443", "192.0.2.1", TracerouteOptions{Protocol: "TCP", Port: 443, Probes: 10, MaxHops: 64, FirstTTL: 3, ReverseDNS: true}, ""},
		{"unprivileged icmp", "example.com", TracerouteOptions{Privileged: &no}, ""},
		{"privileged udp", "example.com", TracerouteOptions{Protocol: "udp", Privileged: &yes}, ""},
		{"port in target", "example.com:443", TracerouteOptions{}, `target "example.com:443" has a port`},
		{"bad protocol", "example.com", TracerouteOptions{Protocol: "sctp"}, `protocol "sctp" is not icmp, udp or tcp`},
		{"port for icmp", "example.com", TracerouteOptions{Port: 80}, "port 80 makes no sense for protocol icmp"},
		{"port too big", "example.com", TracerouteOptions{Protocol: "udp", Port: 65536}, "port 65536 is out of range"},
		{"probes", "example.com", TracerouteOptions{Probes: 101}, "probes 101 is out of range [1, 100]"},
		{"max_hops", "example.com", TracerouteOptions{MaxHops: 256}, "max_hops 256 is out of range [1, 255]"},
		{"first_ttl past max_hops", "example.com", TracerouteOptions{MaxHops: 5, FirstTTL: 6}, "first_ttl 6 is out of range [1, max_hops 5]"},
		{"probe_timeout", "example.com", TracerouteOptions{ProbeTimeout: time.Microsecond}, "probe_timeout 1µs is below 1ms"},
		{"unprivileged tcp", "example.com", TracerouteOptions{Protocol: "tcp", Privileged: &no}, "protocol tcp needs raw sockets"},
		{"ip6", "example.com", TracerouteOptions{DialOptions: DialOptions{Family: "ip6"}}, `family "ip6": traceroute traces any`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Check{Name: "path", Kind: result.KindTraceroute, Target: tc.target, Traceroute: tc.o}
			c.SetDefaults(".")
			err := c.Validate(nil)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
