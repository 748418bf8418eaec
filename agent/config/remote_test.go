package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseChecks(t *testing.T) {
	cs, err := ParseChecks("remote", []byte("checks:\n  - {name: a, kind: tcp, target: \"127.0.0.1:1\"}\n  - {name: b, kind: dns, target: example.com, interval: 10s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Interval != DefaultCheckInterval || cs[1].Timeout != 8*time.Second {
		t.Errorf("got %+v, want two checks with the file's defaults", cs)
	}
	for _, tc := range []struct{ doc, want string }{
		{"", "remote: the document is empty"},
		{"- a\n", "remote:1: want a mapping"},
		{"agent: {name: x}\nchecks: []\n", `remote:1: unknown field "agent"`},
		{"checks:\n  - {name: a, kind: tcp, target: \"x:1\"}\n  - {name: a, kind: tcp, target: \"x:2\"}\n", `remote:3: checks[1] (a): name "a" is already used`},
		{"checks:\n  - name: a\n    kind: tcp\n    targte: x\n", `remote:4: unknown field "targte"`},
		{"checks: []\n", "remote:1: no checks"},
	} {
		_, err := ParseChecks("remote", []byte(tc.doc))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error starting %q", tc.doc, err, tc.want)
		}
	}
}
