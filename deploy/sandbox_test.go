package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/syncbuf"
)

// sandboxScript builds, inside `unshare -m`, the file system a unit with
// ProtectSystem=strict, PrivateTmp=yes and a StateDirectory sees, then execs
// its arguments. $1 is the test's system image: under a private /tmp it would
// vanish, so it is held open and put back, read-only. $2 is the one writable
// directory, $3 yes for PrivateTmp.
const sandboxScript = `set -eu
root=$1 data=$2 private_tmp=$3
shift 3
exec 3<"$root"
# ProtectSystem=strict: every mount read-only, but /dev, /proc and /sys.
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
	case $m in /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) continue ;; esac
	mount -o remount,bind,ro "$m"
done
if [ "$private_tmp" = yes ]; then
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
	mkdir -p "$root"
	mount --no-canonicalize --rbind /proc/self/fd/3 "$root"
	mount -o remount,bind,ro "$root"
fi
exec 3<&-
# StateDirectory=: writable again.
mount --bind "$data" "$data"
mount -o remount,bind,rw "$data"
exec "$@"
`

// sandbox runs commands the way systemd would run them for one unit:
// its user, capabilities, no_new_privs and file system view, in a system
// image (root) that install.sh filled.
type sandbox struct {
	root, data string // data is the StateDirectory, under root
	user       account
	ambient    string // setpriv capability lists
	bounding   string
	noNewPrivs bool
	privateTmp bool
	vars       map[string]string // from EnvironmentFile=
	env        []string
}

// newSandbox derives everything from the unit file, so the unit and this
// test cannot drift apart.
func newSandbox(t *testing.T, root string, u *unitFile) *sandbox {
	t.Helper()
	if u.get("ProtectSystem") != "strict" {
		t.Fatalf("%s: ProtectSystem=%q; the sandbox emulates strict only", u.path, u.get("ProtectSystem"))
	}
	if u.has("ReadWritePaths") || strings.Contains(u.get("StateDirectory"), " ") {
		t.Fatalf("%s: the sandbox emulates one StateDirectory and no ReadWritePaths; teach it more", u.path)
	}
	sb := &sandbox{
		root:       root,
		data:       filepath.Join(root, "/var/lib", u.get("StateDirectory")),
		user:       lookupUser(t, root, u.get("User")),
		ambient:    u.capabilities("AmbientCapabilities"),
		bounding:   u.capabilities("CapabilityBoundingSet"),
		noNewPrivs: u.get("NoNewPrivileges") == "yes",
		privateTmp: u.get("PrivateTmp") == "yes",
	}
	if g := u.get("Group"); g != "" && g != u.get("User") {
		t.Fatalf("%s: Group=%s differs from User=; the sandbox uses the user's own group", u.path, g)
	}
	var err error
	if sb.vars, err = envFile(sb.path(u.get("EnvironmentFile"))); err != nil {
		t.Fatal(err)
	}
	sb.env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"USER=" + u.get("User"), "LOGNAME=" + u.get("User"), "STATE_DIRECTORY=" + sb.data}
	for k, v := range sb.vars {
		sb.env = append(sb.env, k+"="+v)
	}
	return sb
}

// path maps an absolute path of the target system into the image.
func (sb *sandbox) path(p string) string { return filepath.Join(sb.root, p) }

// argv maps a unit's command line into the image: every absolute path.
func (sb *sandbox) argv(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = a
		if strings.HasPrefix(a, "/") {
			out[i] = sb.path(a)
		}
	}
	return out
}

func (sb *sandbox) command(ctx context.Context, argv ...string) *exec.Cmd {
	pt := "no"
	if sb.privateTmp {
		pt = "yes"
	}
	args := []string{"-m", "--propagation", "private", "sh", "-c", sandboxScript, "sandbox", sb.root, sb.data, pt,
		"setpriv", fmt.Sprintf("--reuid=%d", sb.user.uid), fmt.Sprintf("--regid=%d", sb.user.gid), "--clear-groups",
		"--inh-caps=" + sb.ambient, "--ambient-caps=" + sb.ambient, "--bounding-set=" + sb.bounding}
	if sb.noNewPrivs {
		args = append(args, "--no-new-privs")
	}
	cmd := exec.CommandContext(ctx, "unshare", append(append(args, "--"), argv...)...)
	cmd.Env = sb.env
	return cmd
}

// needNamespaces skips when this kernel or container refuses a mount
// namespace, or a read-only remount in one (the primitive the sandbox is
// made of): there is nothing to emulate the unit in. Anything else that
// goes wrong in the sandbox fails the test.
func needNamespaces(t *testing.T) {
	t.Helper()
	needRoot(t)
	needTool(t, "setpriv", "util-linux")
	out, err := exec.Command(needTool(t, "unshare", "util-linux"), "-m", "--propagation", "private",
		"mount", "-o", "remount,bind,ro", "/").CombinedOutput()
	if err != nil {
		t.Skipf("the kernel refuses a mount namespace with a read-only / here (unshare -m mount -o remount,bind,ro /: %v: %s); the unit cannot be emulated", err, bytes.TrimSpace(out))
	}
}

// spooled returns the results in the agent's spool under data.
func spooled(t *testing.T, data string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "spool", "*.ndjson"))
	var rs []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var r map[string]any
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				rs = append(rs, r)
			}
		}
	}
	return rs
}

// pinged returns an icmp result that got replies, or nil.
func pinged(rs []map[string]any) map[string]any {
	for _, r := range rs {
		if r["kind"] == "icmp" && r["ok"] == true {
			if n, _ := r["ping_received"].(float64); n > 0 {
				return r
			}
		}
	}
	return nil
}

// runUntil starts the agent in sb, waits until done says so, given its
// output so far (or the deadline), then stops it with SIGTERM as systemd
// does and reports how long the stop took.
func runUntil(t *testing.T, sb *sandbox, argv []string, wait time.Duration, done func(out string) bool) (out string, stopped time.Duration, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
	defer cancel()
	var buf syncbuf.Buffer
	cmd := sb.command(ctx, argv...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && !done(buf.String()); {
		select {
		case err := <-exited:
			return buf.String(), 0, fmt.Errorf("exited early: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// unshare, sh and setpriv exec one another: the process is the agent.
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err = <-exited
	return buf.String(), time.Since(start), err
}

// makeDecoy makes a directory the service's user owns outside its data
// directory: only the read-only mount keeps the service out of it.
func makeDecoy(t *testing.T, dir string, a account) string {
	t.Helper()
	d, err := os.MkdirTemp(dir, "meridian-decoy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chown(d, a.uid, a.gid); err != nil {
		t.Fatal(err)
	}
	return d
}
