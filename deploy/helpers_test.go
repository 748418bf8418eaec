package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// repo returns the repository's root directory.
func repo(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// needTool fails (never skips) when a command the check needs is missing,
// naming the deploy/deps.sh entry that installs it.
func needTool(t testing.TB, name, dep string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install it with `deploy/deps.sh %s` (as root)", name, dep)
	}
	return p
}

// needRoot skips when not root: useradd --root chroots and the sandbox
// changes users, which only root may do. make test runs as root.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (useradd --root, setpriv --reuid): run as root, as make test does")
	}
}

var built struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string // package dir -> binary, or "" after a failed build
	errs map[string]error
}

// binary builds one of the repository's commands once per test run, static
// (CGO off, like make dist) so it runs under any root. Each is built on its
// own: the agent's tests need not wait for, or fail with, the collector.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.bins == nil {
		built.bins, built.errs = map[string]string{}, map[string]error{}
		dir, err := os.MkdirTemp("", "meridian-deploy-bin-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir = dir
	}
	if _, ok := built.bins[pkg]; !ok {
		out := filepath.Join(built.dir, filepath.Base(pkg))
		// go test puts its own go first in PATH.
		cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
		cmd.Dir = repo(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		built.bins[pkg] = out
		if msg, err := cmd.CombinedOutput(); err != nil {
			built.bins[pkg], built.errs[pkg] = "", fmt.Errorf("cannot build %s: %v\n%s", pkg, err, msg)
		}
	}
	if err := built.errs[pkg]; err != nil {
		t.Fatal(err)
	}
	return built.bins[pkg]
}

// The two programs.
func collectorBinary(t testing.TB) string { return binary(t, "collector/cmd/meridian") }
func agentBinary(t testing.TB) string     { return binary(t, "agent/cmd/meridian-agent") }

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// newRoot makes an empty system image: a world-traversable directory (the
// services' users must reach their binaries in it) whose etc/passwd and
// etc/group are copies of this machine's, so users created in it get ids
// nobody here has.
func newRoot(t testing.TB) string {
	t.Helper()
	root, err := os.MkdirTemp("", "meridian-deploy-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		b, err := os.ReadFile("/etc/" + f)
		if err != nil && f != "gshadow" {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", f), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// install runs deploy/install.sh --root root with the given binaries (and
// options) and returns its output.
func install(t testing.TB, root string, args ...string) string {
	t.Helper()
	args = append([]string{"--root", root}, args...)
	cmd := exec.Command(filepath.Join(repo(t), "deploy", "install.sh"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// account is a user of a system image.
type account struct{ uid, gid int }

// lookupUser reads name from root/etc/passwd (not this machine's users).
func lookupUser(t testing.TB, root, name string) account {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) < 4 || fs[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(fs[2])
		gid, err2 := strconv.Atoi(fs[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("%s/etc/passwd: bad ids for %s: %q", root, name, sc.Text())
		}
		return account{uid, gid}
	}
	t.Fatalf("%s/etc/passwd has no user %s", root, name)
	return account{}
}
