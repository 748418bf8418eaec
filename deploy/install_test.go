package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestInstallTwice runs install.sh against a fresh system image, edits the
// settings as a user would, and runs it again: both runs succeed, and the
// second changes nothing the user owns.
func TestInstallTwice(t *testing.T) {
	needRoot(t)
	needTool(t, "systemctl", "systemd")
	root := newRoot(t)
	install(t, root, collectorBinary(t), agentBinary(t))
	checkInstalled(t, root)
	ids := map[string]account{"meridian": lookupUser(t, root, "meridian"), "meridian-agent": lookupUser(t, root, "meridian-agent")}

	edited := map[string]string{"agent.env": "MERIDIAN_TOKEN=mrd_mine\n", "agent.yml": "# mine\n", "meridian.env": "MERIDIAN_PASSWORD=mine\n"}
	for f, s := range edited {
		if err := os.WriteFile(filepath.Join(root, "etc/meridian", f), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := install(t, root, collectorBinary(t), agentBinary(t))
	checkInstalled(t, root)
	for f, s := range edited {
		if b, _ := os.ReadFile(filepath.Join(root, "etc/meridian", f)); string(b) != s {
			t.Errorf("the second run changed the edited /etc/meridian/%s: got %q, want %q", f, b, s)
		}
	}
	for name, a := range ids {
		if got := lookupUser(t, root, name); got != a {
			t.Errorf("user %s: ids %v after the second run, %v before", name, got, a)
		}
		if n := bytes.Count(readFile(t, filepath.Join(root, "etc/passwd")), []byte("\n"+name+":")); n != 1 {
			t.Errorf("user %s is in etc/passwd %d times", name, n)
		}
	}
	if strings.Contains(out, "created system user") || strings.Count(out, "kept ") != 3 {
		t.Errorf("second run: want no new users and three kept files; output:\n%s", out)
	}
}

// checkInstalled checks what install.sh promises to leave in root.
func checkInstalled(t *testing.T, root string) {
	t.Helper()
	collector, agent := collectorBinary(t), agentBinary(t)
	for name, src := range map[string]string{"meridian": collector, "meridian-agent": agent} {
		dst := filepath.Join(root, "usr/local/bin", name)
		if !bytes.Equal(readFile(t, dst), readFile(t, src)) {
			t.Errorf("%s is not the binary given", dst)
		}
		checkMode(t, dst, 0o755, 0)
		unit := filepath.Join(root, "etc/systemd/system", name+".service")
		if !bytes.Equal(readFile(t, unit), readFile(t, filepath.Join(repo(t), "deploy/systemd", name+".service"))) {
			t.Errorf("%s differs from deploy/systemd/%s.service", unit, name)
		}
		// systemctl --root enable: the unit starts at boot.
		if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", name+".service")); err != nil || target != "/etc/systemd/system/"+name+".service" {
			t.Errorf("%s.service is not enabled: %q, %v", name, target, err)
		}
		a := lookupUser(t, root, name)
		if a.uid == 0 || a.uid >= 1000 {
			t.Errorf("user %s has uid %d, want a system user", name, a.uid)
		}
		if !strings.Contains(string(readFile(t, filepath.Join(root, "etc/passwd"))), name+":/usr/sbin/nologin\n") {
			t.Errorf("user %s can log in", name)
		}
	}
	agent1, collector1 := lookupUser(t, root, "meridian-agent"), lookupUser(t, root, "meridian")
	checkMode(t, filepath.Join(root, "var/lib/meridian-agent"), 0o750|os.ModeDir, agent1.uid)
	checkMode(t, filepath.Join(root, "var/lib/meridian/spool"), 0o750|os.ModeDir, collector1.uid)
	checkMode(t, filepath.Join(root, "etc/meridian/agent.env"), 0o600, 0)
	checkMode(t, filepath.Join(root, "etc/meridian/meridian.env"), 0o600, 0)
	checkMode(t, filepath.Join(root, "etc/meridian/agent.yml"), 0o644, 0)
}

func checkMode(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if fi.Mode() != mode || int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("%s: mode %v uid %d, want %v uid %d", path, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, mode, uid)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInstallRefuses(t *testing.T) {
	needRoot(t)
	root := newRoot(t)
	script := filepath.Join(repo(t), "deploy/install.sh")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no binary", []string{"--root", root}, "no binary given"},
		{"unknown option", []string{"--bogus", "/bin/true"}, "unknown option --bogus"},
		{"a binary of another name", []string{"--root", root, "/bin/true"}, "cannot tell what /bin/true is"},
		{"not a system image", []string{"--root", t.TempDir(), "/bin/true"}, "has no etc/passwd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(script, tc.args...).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
				t.Errorf("install.sh %v: %v, %q; want exit 2 saying %q", tc.args, err, out, tc.want)
			}
		})
	}
}
