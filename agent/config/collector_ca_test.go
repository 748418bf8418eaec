package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/internal/testca"
)

const caChecks = "checks: [{name: a, kind: tcp, target: '127.0.0.1:1'}]\n"

// writeConfigFile writes body to dir/agent.yml and returns the path.
func writeConfigFile(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCollectorCA(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "config CA").WriteCA(t, dir)
	cfg, err := Load(writeConfigFile(t, dir, "collector: https://collector.example\ncollector_ca: ca.pem\n"+caChecks))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CollectorCA != ca {
		t.Errorf("got collector_ca %q, want %q (relative to the config file)", cfg.CollectorCA, ca)
	}
	cfg, err = Parse("x.yml", []byte(caChecks))
	if err != nil || cfg.CollectorCA != "" {
		t.Errorf("got collector_ca %q (%v), want none by default", cfg.CollectorCA, err)
	}
}

func TestCollectorCAInvalid(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.pem")
	for _, tc := range []struct{ body, want string }{
		{"collector_ca: nope.pem\n" + caChecks,
			"agent.yml:1: cannot read the collector CA: open " + missing + ": no such file or directory (check --ca, MERIDIAN_CA or collector_ca)"},
		{"agent: {name: a}\ncollector_ca: key.txt\n" + caChecks,
			"agent.yml:2: cannot use " + notPEM + " as the collector CA: no PEM certificates in it"},
		{"collector_cafile: ca.pem\n" + caChecks, `agent.yml:1: unknown field "collector_cafile" in config.Config`},
	} {
		_, err := Load(writeConfigFile(t, dir, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.body, err, tc.want)
		}
	}
	// The collector's CA belongs to the agent's file, never to a remote document.
	if _, err := ParseChecks("remote config", []byte("collector_ca: ca.pem\n"+caChecks)); err == nil || !strings.Contains(err.Error(), `unknown field "collector_ca"`) {
		t.Errorf("remote document with collector_ca: got %v, want it refused", err)
	}
}
