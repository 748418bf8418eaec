package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/internal/result"
)

func TestLoadGood(t *testing.T) {
	cfg, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.Name != "local-1" || cfg.Agent.Region != "local" || cfg.Collector != "http://127.0.0.1:8080" {
		t.Errorf("got agent %+v collector %q", cfg.Agent, cfg.Collector)
	}
	if cfg.Ship != (Ship{Interval: time.Second, Batch: 500, MaxSpoolBytes: 64 << 20}) {
		t.Errorf("got ship %+v", cfg.Ship)
	}
	if len(cfg.Checks) != 2 {
		t.Fatalf("got %d checks, want 2", len(cfg.Checks))
	}
	demo, def := cfg.Checks[0], cfg.Checks[1]
	if demo.Interval != 10*time.Second || demo.Timeout != 5*time.Second || len(demo.HTTP.ExpectStatus) != 1 || demo.HTTP.ExpectStatus[0] != 200 {
		t.Errorf("got demo check %+v", demo)
	}
	if def.Interval != DefaultCheckInterval || def.Timeout != 48*time.Second {
		t.Errorf("got interval %v timeout %v, want the defaults 60s and 48s", def.Interval, def.Timeout)
	}
	if h := def.HTTP; h.Method != "HEAD" || h.Headers["X-Probe"] != "meridian" || h.BodyContains != "ok" || h.MaxBodyBytes != 1024 {
		t.Errorf("got http options %+v", h)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("x.yml", []byte("checks: [{name: a, kind: http, target: 'http://h/'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Ship != (Ship{Interval: DefaultShipInterval, Batch: DefaultShipBatch, MaxSpoolBytes: DefaultMaxSpoolBytes}) || cfg.Agent.Name == "" {
		t.Errorf("got ship %+v agent %+v, want defaults and the host name", cfg.Ship, cfg.Agent)
	}
	other, err := Parse("x.yml", []byte("checks: [{name: b, kind: http, target: 'http://h/'}]\n"))
	if err != nil || cfg.Version == 0 || other.Version == cfg.Version {
		t.Errorf("got versions %d and %d (%v), want two different non-zero hashes", cfg.Version, other.Version, err)
	}
}

// Each invalid-*.yml must fail with exactly this message.
func TestInvalid(t *testing.T) {
	want := map[string]string{
		"ca-file":             `testdata/invalid-ca-file.yml:5: checks[0] (demo): cannot read ca_file: open testdata/does-not-exist.pem: no such file or directory`,
		"collector":           `testdata/invalid-collector.yml:3: collector "127.0.0.1:8080" is not an http(s) URL such as http://127.0.0.1:8080`,
		"duplicate-name":      `testdata/invalid-duplicate-name.yml:8: checks[2] (demo): name "demo" is already used by checks[0]; names must be unique`,
		"duration":            "testdata/invalid-duration.yml:5: cannot unmarshal !!int `10` into time.Duration (write durations with a unit, such as 10s)",
		"empty":               `testdata/invalid-empty.yml: the config is empty (want at least agent, collector and checks)`,
		"http-target":         `testdata/invalid-http-target.yml:4: checks[0] (demo): cannot use http target "example.com": want an absolute http:// or https:// URL`,
		"interval":            `testdata/invalid-interval.yml:5: checks[0] (demo): interval 500ms is below the minimum 1s`,
		"kind":                `testdata/invalid-kind.yml:3: checks[0] (demo): unknown kind "smtp" (want one of dns, tcp, tls, http, icmp, browser, traceroute, cdn)`,
		"no-checks":           `testdata/invalid-no-checks.yml:1: no checks: add at least one under checks:`,
		"no-name":             `testdata/invalid-no-name.yml:2: checks[0]: name must not be empty`,
		"ship":                `testdata/invalid-ship.yml:3: ship.max_spool_bytes 100KiB is below the minimum 1MiB`,
		"size":                `testdata/invalid-size.yml:2: cannot use "256 megs" as a size: write bytes or a number with a unit, such as 256MiB`,
		"syntax":              `testdata/invalid-syntax.yml:1: did not find expected '-' indicator`,
		"target":              `testdata/invalid-target.yml:2: checks[0] (demo): target must not be empty`,
		"timeout":             `testdata/invalid-timeout.yml:6: checks[0] (demo): timeout 15s is longer than interval 10s; lower it or raise the interval`,
		"unknown-field":       `testdata/invalid-unknown-field.yml:7: unknown field "intervall" in probe.Check (check the spelling and the indentation)`,
		"unknown-http-option": `testdata/invalid-unknown-http-option.yml:7: unknown field "expect_stauts" in probe.HTTPOptions (check the spelling and the indentation)`,
	}
	files, _ := filepath.Glob("testdata/invalid-*.yml")
	if len(files) != len(want) {
		t.Errorf("got %d invalid-*.yml files, want %d (one per case below)", len(files), len(want))
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "invalid-"), ".yml")
		_, err := Load(f)
		if err == nil {
			t.Errorf("%s: got no error, want %q", f, want[name])
		} else if err.Error() != want[name] {
			t.Errorf("%s:\ngot  %s\nwant %s", f, err, want[name])
		}
	}
}

func TestKindWithoutProbe(t *testing.T) {
	saved := probe.Probes[result.KindBrowser]
	delete(probe.Probes, result.KindBrowser)
	defer func() {
		if saved != nil {
			probe.Probes[result.KindBrowser] = saved
		}
	}()
	_, err := Parse("x.yml", []byte("checks:\n  - name: page\n    kind: browser\n    target: https://example.com/\n"))
	want := `x.yml:3: checks[0] (page): kind "browser" has no probe in this build`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "256MiB": 256 << 20, "512 KiB": 512 << 10, "1GiB": 1 << 30, "500KB": 500e3, "2GB": 2e9, "10B": 10} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q): got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "9999999999GiB"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q): got %d, want an error", in, got)
		}
	}
	for b, want := range map[ByteSize]string{256 << 20: "256MiB", 1 << 30: "1GiB", 3 << 10: "3KiB", 1000: "1000B", 0: "0B"} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String(): got %q, want %q", int64(b), got, want)
		}
	}
}
