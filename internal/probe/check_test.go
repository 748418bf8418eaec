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
		{"checks:\n  - {name: a, kind: smtp, target: x}\n", `remote:2: checks[0] (a): unknown kind "smtp" (want one of dns, tcp, tls, http, icmp, browser, cdn)`},
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
