package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// systemdRoot installs both programs into a fresh system image, plus this
// machine's own units (sysinit.target and the rest), against which
// systemd-analyze --root resolves the units' dependencies.
func systemdRoot(t *testing.T) string {
	t.Helper()
	needRoot(t)
	root := newRoot(t)
	install(t, root, "--no-systemctl", collectorBinary(t), agentBinary(t))
	dst := filepath.Join(root, "usr/lib/systemd")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", dst).CombinedOutput(); err != nil {
		t.Fatalf("cannot copy this machine's units: %v\n%s", err, out)
	}
	// The base system's tools the units call (ExecReload=/bin/kill), which
	// verify wants to find in the image as well.
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "/usr/bin/kill", filepath.Join(root, "usr/bin/kill")).CombinedOutput(); err != nil {
		t.Fatalf("cannot copy kill: %v\n%s", err, out)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	return root
}

// verify runs systemd-analyze verify on units installed in root. It exits 0
// on unknown keys and unparsable values (it only warns about them), so any
// output at all counts as a failure.
func verify(t *testing.T, root string, units ...string) error {
	t.Helper()
	sa := needTool(t, "systemd-analyze", "systemd")
	args := []string{"verify", "--man=no", "--root=" + root}
	for _, u := range units {
		args = append(args, "/etc/systemd/system/"+u)
	}
	out, err := exec.Command(sa, args...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func TestUnitsVerify(t *testing.T) {
	root := systemdRoot(t)
	if err := verify(t, root, "meridian.service", "meridian-agent.service"); err != nil {
		t.Fatal(err)
	}
}

// TestUnitsVerifyCatchesMistakes shows that verify, as used above, fails a
// broken unit: without it a passing TestUnitsVerify would prove nothing.
func TestUnitsVerifyCatchesMistakes(t *testing.T) {
	root := systemdRoot(t)
	unit := filepath.Join(root, "etc/systemd/system/meridian-agent.service")
	good, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"typo in a directive", "NoNewPrivileges=yes", "NoNewPrivilege=yes", "Unknown key"},
		{"bad value", "ProtectSystem=strict", "ProtectSystem=strickt", "strickt"},
		{"missing binary", "ExecStart=/usr/local/bin/meridian-agent ", "ExecStart=/usr/local/bin/meridian-agnet ", "meridian-agnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("the unit has no %q to break", tc.from)
			}
			if err := os.WriteFile(unit, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(unit, good, 0o644)
			err := verify(t, root, "meridian-agent.service")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify of a unit with %s: got %v, want an error mentioning %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestUnitsSecurityExposure pins systemd's own exposure score (0 best, 10
// worst, on a 0-100 threshold scale): loosening a unit fails here.
func TestUnitsSecurityExposure(t *testing.T) {
	root := systemdRoot(t)
	sa := needTool(t, "systemd-analyze", "systemd")
	for unit, threshold := range map[string]int{"meridian-agent.service": 40, "meridian.service": 20} {
		out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", "--root="+root,
			fmt.Sprintf("--threshold=%d", threshold), unit).CombinedOutput()
		level := regexp.MustCompile(`Overall exposure level for \S+: (\S+ \S+)`).FindSubmatch(out)
		if err != nil || level == nil {
			t.Errorf("%s: exposure above %d/100 or not measured: %v\n%s", unit, threshold, err, out)
			continue
		}
		t.Logf("%s: exposure %s (allowed up to %.1f)", unit, level[1], float64(threshold)/10)
	}
}

// exampleEnv reads the example settings install.sh copies to /etc/meridian.
func exampleEnv(t *testing.T, name string) map[string]string {
	t.Helper()
	env, err := envFile(filepath.Join(repo(t), "deploy/systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestAgentUnitHardening(t *testing.T) {
	u := mustParseUnit(t, filepath.Join(repo(t), "deploy/systemd/meridian-agent.service"))
	want := map[string]string{
		"User": "meridian-agent", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"StateDirectory": "meridian-agent", "Restart": "on-failure", "KillSignal": "SIGTERM",
		"EnvironmentFile": "/etc/meridian/agent.env", "PrivateTmp": "yes", "ProtectHome": "yes",
	}
	checkSettings(t, u, want)
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if got := u.capabilities(k); got != "-all,+net_raw" {
			t.Errorf("%s: got %q, want CAP_NET_RAW alone", k, got)
		}
	}
	agent := agentBinary(t)
	checkFlags(t, agent, u, exampleEnv(t, "agent.env"))
	stop := stopTimeout(t, agent, command(u.get("ExecStart"), exampleEnv(t, "agent.env")))
	timeout, err := u.duration("TimeoutStopSec")
	if err != nil {
		t.Fatal(err)
	}
	// After --stop-timeout the agent makes one last ship attempt of up to 2 s
	// (flushTimeout in agent/cmd/meridian-agent/daemon.go).
	if timeout <= stop+2*time.Second {
		t.Errorf("TimeoutStopSec=%v leaves no room past --stop-timeout %v and the 2s last ship: systemd would SIGKILL a clean stop", timeout, stop)
	}
}

func TestCollectorUnitHardening(t *testing.T) {
	u := mustParseUnit(t, filepath.Join(repo(t), "deploy/systemd/meridian.service"))
	checkSettings(t, u, map[string]string{
		"User": "meridian", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "Restart": "on-failure",
		"EnvironmentFile": "/etc/meridian/meridian.env", "PrivateTmp": "yes", "ProtectHome": "yes",
	})
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if !u.has(k) || u.capabilities(k) != "-all" {
			t.Errorf("%s: got %q, want it set and empty (no capabilities)", k, u.get(k))
		}
	}
	if !strings.Contains(u.get("ExecStart"), "--spool-dir /var/lib/meridian/") || !strings.HasPrefix(u.get("StateDirectory"), "meridian") {
		t.Errorf("the journal (--spool-dir) must live under StateDirectory=meridian, the only writable place; ExecStart=%s", u.get("ExecStart"))
	}
	collector := collectorBinary(t)
	checkFlags(t, collector, u, exampleEnv(t, "meridian.env"))
}

func checkSettings(t *testing.T, u *unitFile, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := u.get(k); got != v {
			t.Errorf("%s: %s=%q, want %q", u.path, k, got, v)
		}
	}
}

var flagRE = regexp.MustCompile(`^--[a-z][a-z0-9-]*`)

// checkFlags runs `BINARY SUBCOMMAND --help` for every Exec*= line of u
// (with the example env's $VARs expanded) and fails on flags it lacks.
func checkFlags(t *testing.T, bin string, u *unitFile, env map[string]string) {
	t.Helper()
	for _, key := range []string{"ExecStartPre", "ExecStart"} {
		for _, line := range u.sections["Service"][key] {
			argv := command(line, env)
			if len(argv) < 2 || filepath.Base(argv[0]) != filepath.Base(bin) {
				t.Fatalf("%s=%s: want %s SUBCOMMAND …", key, line, filepath.Base(bin))
			}
			help, err := exec.Command(bin, argv[1], "--help").CombinedOutput()
			if err != nil {
				t.Fatalf("%s %s --help: %v\n%s", bin, argv[1], err, help)
			}
			for _, a := range argv[2:] {
				if f := flagRE.FindString(a); f != "" && !bytes.Contains(help, []byte(f+" ")) {
					t.Errorf("%s=%s: %s %s has no flag %s", key, line, filepath.Base(bin), argv[1], f)
				}
			}
		}
	}
}

// stopTimeout returns the --stop-timeout in argv, else the default that
// `meridian-agent run --help` states.
func stopTimeout(t *testing.T, agent string, argv []string) time.Duration {
	t.Helper()
	for i, a := range argv {
		if a == "--stop-timeout" && i+1 < len(argv) {
			d, err := time.ParseDuration(argv[i+1])
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	help, _ := exec.Command(agent, "run", "--help").CombinedOutput()
	m := regexp.MustCompile(`--stop-timeout D .*\(default: (\S+)\)`).FindSubmatch(help)
	if m == nil {
		t.Fatalf("cannot find --stop-timeout's default in run --help:\n%s", help)
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
