package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pingConfig replaces the example checks: one privileged ping of loopback
// a second. A raw ICMP socket needs CAP_NET_RAW whatever
// net.ipv4.ping_group_range allows, so a reply proves the unit's capability
// reached the agent.
const pingConfig = `agent: {name: sandbox, region: test}
checks:
  - name: ping-loopback
    kind: icmp
    target: 127.0.0.1
    interval: 1s
    icmp: {privileged: true, count: 2}
`

// TestAgentUnitSandbox runs the built agent as meridian-agent.service would:
// its User=, capability sets and NoNewPrivileges= through setpriv, and
// ProtectSystem=strict, PrivateTmp= and StateDirectory= as a mount namespace,
// all read from the unit file, in a system image install.sh filled.
func TestAgentUnitSandbox(t *testing.T) {
	needNamespaces(t)
	u := mustParseUnit(t, filepath.Join(repo(t), "deploy/systemd/meridian-agent.service"))
	root := newRoot(t)
	install(t, root, "--no-systemctl", agentBinary(t))

	sb := newSandbox(t, root, u)
	pre := sb.argv(command(u.get("ExecStartPre"), sb.vars))
	if out, err := sb.command(context.Background(), pre...).CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre on the installed example config: %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nobody listens: results stay in the spool
	ln.Close()
	writeFile(t, sb.path("/etc/meridian/agent.yml"), pingConfig)
	writeFile(t, sb.path("/etc/meridian/agent.env"), fmt.Sprintf(
		"MERIDIAN_COLLECTOR=http://%s\nMERIDIAN_TOKEN=mrd_test\nMERIDIAN_AGENT_FLAGS=--config-poll 0\n", closed))
	sb = newSandbox(t, root, u)
	argv := sb.argv(command(u.get("ExecStart"), sb.vars))
	timeout, err := u.duration("TimeoutStopSec")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("pings with CAP_NET_RAW, spools, stops on SIGTERM", func(t *testing.T) {
		out, stopped, err := runUntil(t, sb, argv, 20*time.Second, func(string) bool { return pinged(spooled(t, sb.data)) != nil })
		r := pinged(spooled(t, sb.data))
		if r == nil {
			t.Fatalf("no icmp result with replies in %s/spool after 20s; agent output:\n%s", sb.data, out)
		}
		if err != nil || stopped >= timeout {
			t.Errorf("SIGTERM: exit %v after %v, want a clean exit well within TimeoutStopSec=%v; output:\n%s", err, stopped, timeout, out)
		}
		checkOwned(t, filepath.Join(sb.data, "spool"), sb.user)
		t.Logf("uid %d, caps %s: ping 127.0.0.1 %v/%v replies, avg %v ms; spool in %s; SIGTERM to exit %v (TimeoutStopSec %v)",
			sb.user.uid, sb.ambient, r["ping_received"], r["ping_sent"], r["ping_avg_ms"], sb.data, stopped.Round(time.Millisecond), timeout)
	})

	t.Run("credentials", func(t *testing.T) {
		checkCredentials(t, sb)
	})

	t.Run("no ping without CAP_NET_RAW", func(t *testing.T) {
		nocap := *sb
		nocap.ambient, nocap.bounding = "-all", "-all"
		nocap.data = makeDecoy(t, sb.path("/var/lib"), sb.user)
		args := replaceFlag(argv, "--data-dir", nocap.data)
		const refused = "cannot open an ICMP socket"
		out, _, _ := runUntil(t, &nocap, args, 10*time.Second, func(out string) bool { return strings.Contains(out, refused) })
		if pinged(spooled(t, nocap.data)) != nil || !strings.Contains(out, refused) {
			t.Errorf("without CAP_NET_RAW the privileged ping should fail to open its socket; output:\n%s", out)
		}
	})

	t.Run("writes nowhere but its data dir", func(t *testing.T) {
		checkWrites(t, sb, argv)
	})
}

// checkWrites tries to write outside the data dir, where the user owns the
// directories, so only the read-only (or private) mounts can refuse.
func checkWrites(t *testing.T, sb *sandbox, argv []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The agent itself, pointed at another directory it owns.
	other := makeDecoy(t, sb.path("/var/lib"), sb.user)
	out, err := sb.command(ctx, replaceFlag(argv, "--data-dir", other)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "read-only file system") {
		t.Errorf("agent with --data-dir %s: got %v, want a read-only file system error; output:\n%s", other, err, out)
	}
	// In the image, on this machine's own file system, and in the two
	// temporary directories PrivateTmp= replaces.
	dirs := []string{makeDecoy(t, sb.path("/etc"), sb.user), makeDecoy(t, "/var/lib", sb.user),
		makeDecoy(t, "/var/tmp", sb.user), makeDecoy(t, "/tmp", sb.user)}
	for _, dir := range dirs {
		out, err := sb.command(ctx, "touch", dir+"/probe").CombinedOutput()
		if err == nil {
			t.Errorf("touch %s/probe: the service could write there", dir)
		}
		t.Logf("%s: %s", dir, strings.TrimSpace(string(out)))
	}
	// PrivateTmp: /tmp is writable, but it is the service's own.
	name := fmt.Sprintf("/tmp/meridian-private-%d", time.Now().UnixNano())
	if out, err := sb.command(ctx, "touch", name).CombinedOutput(); err != nil {
		t.Errorf("touch %s: %v: %s (PrivateTmp=yes gives the service a writable /tmp of its own)", name, err, out)
	}
	if _, err := os.Stat(name); err == nil {
		os.Remove(name)
		t.Errorf("%s reached this machine's /tmp: /tmp is not private", name)
	}
	if out, err := sb.command(ctx, "touch", sb.data+"/probe").CombinedOutput(); err != nil {
		t.Errorf("touch in the data dir %s: %v: %s", sb.data, err, out)
	}
}

func replaceFlag(argv []string, flag, value string) []string {
	out := append([]string(nil), argv...)
	for i := range out {
		if out[i] == flag && i+1 < len(out) {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkOwned fails unless dir holds files, all owned by the service's user.
func checkOwned(t *testing.T, dir string, a account) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("%s: %v, %d files", dir, err, len(entries))
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != a.uid {
			t.Errorf("%s/%s is owned by uid %d, want %d", dir, e.Name(), st.Uid, a.uid)
		}
	}
}

// capBits are the capabilities the units may name, by setpriv's spelling.
var capBits = map[string]uint{"net_raw": 13, "net_bind_service": 10}

// checkCredentials reads /proc/self/status of a process started like the
// agent: the kernel's word on its ids, capability sets and no_new_privs.
func checkCredentials(t *testing.T, sb *sandbox) {
	out, err := sb.command(context.Background(), "cat", "/proc/self/status").CombinedOutput()
	if err != nil {
		t.Fatalf("cat /proc/self/status: %v\n%s", err, out)
	}
	var mask uint64
	for _, c := range strings.Split(sb.ambient, ",")[1:] {
		bit, ok := capBits[strings.TrimPrefix(c, "+")]
		if !ok {
			t.Fatalf("capability %s: add its bit to capBits", c)
		}
		mask |= 1 << bit
	}
	want := map[string]string{
		"Uid": fmt.Sprintf("%d\t%[1]d\t%[1]d\t%[1]d", sb.user.uid), "Gid": fmt.Sprintf("%d\t%[1]d\t%[1]d\t%[1]d", sb.user.gid),
		"CapAmb": fmt.Sprintf("%016x", mask), "CapEff": fmt.Sprintf("%016x", mask), "CapBnd": fmt.Sprintf("%016x", mask),
		"NoNewPrivs": "1", "Groups": "",
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			if v = strings.TrimSpace(v); v != w {
				t.Errorf("/proc/self/status %s: got %q, want %q", k, v, w)
			}
			delete(want, k)
		}
	}
	if len(want) > 0 {
		t.Errorf("/proc/self/status lacks %v", want)
	}
}
