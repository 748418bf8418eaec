package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/sched"
	"github.com/meridian-net/meridian/agent/spool"
	"github.com/meridian-net/meridian/internal/result"
	"github.com/meridian-net/meridian/internal/syncbuf"
)

// The tests here run the real binary, because kill -9 and SIGTERM are about
// a process, not a function.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// agentBinary builds meridian-agent once per test run.
func agentBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the agent binary; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGTERM and SIGKILL")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "meridian-agent-bin")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "meridian-agent")
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		fmt.Fprintf(os.Stderr, "built %s in %v\n", binPath, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// agentProc is one run of the agent binary.
type agentProc struct {
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan error
}

func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(agentBinary(t), append([]string{"run"}, args...)...)
	p.cmd.Env = append(os.Environ(), "MERIDIAN_TOKEN="+testToken)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("agent log:\n%s", p.log)
		}
	})
	return p
}

// wait returns the exit status once the process ends, failing after d.
func (p *agentProc) wait(t *testing.T, d time.Duration) (int, error) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for Cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), err
		}
		return 0, err
	case <-time.After(d):
		t.Fatalf("agent still running after %v\n%s", d, p.log)
		return 0, nil
	}
}

// kill -9 the agent while a batch is in flight (the collector has read it
// but not answered) and while the collector is refusing: on restart, with
// the collector up, every result that was spooled before the kill arrives,
// and after dedupe by id there is exactly one per measurement.
func TestKill9ResumesFromSpool(t *testing.T) {
	agentBinary(t)
	start := time.Now()
	tg := newTargets(t)
	col, colURL := newCollector(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	var checks []string
	for i := range 3 {
		checks = append(checks, fmt.Sprintf("{name: k%d, kind: http, target: %q, interval: 1s}", i, tg.URL+"/"))
	}
	cfg := writeConfig(t, t.TempDir(), "kill-test", checks...)

	// Phase 1: two 503s, then a post that hangs after the collector read it.
	hung := make(chan []string, 1)
	release := make(chan struct{})
	defer close(release)
	var mu sync.Mutex
	posts := 0
	col.setAnswer(func(w http.ResponseWriter, r *http.Request, rs []result.Result) bool {
		mu.Lock()
		posts++
		n := posts
		mu.Unlock()
		if n <= 2 {
			return unavailable(0)(w, r, rs)
		}
		// The collector made this batch durable, but the agent dies before
		// the answer: it sends the batch again after the restart.
		col.record(rs)
		var ids []string
		for _, res := range rs {
			ids = append(ids, res.ID)
		}
		select {
		case hung <- ids:
		default:
		}
		select { // never answer: the agent dies waiting
		case <-r.Context().Done():
		case <-release:
		}
		return false
	})
	p := startAgent(t, "--config", cfg, "--collector", colURL, "--data-dir", dataDir)
	var inFlight []string
	select {
	case inFlight = <-hung:
	case <-time.After(10 * time.Second):
		t.Fatalf("no batch reached the collector\n%s", p.log)
	}
	waitFor(t, 10*time.Second, "9 measurements", func() bool { return tg.total() >= 9 }, p.log)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 5*time.Second)
	measured := tg.total()

	spooled := spooledIDs(t, dataDir)
	// A run in flight at the kill was measured but never appended: at most one per check.
	if len(spooled) > measured || len(spooled) < measured-len(checks) {
		t.Errorf("got %d results spooled for %d measurements, want between %d and %d", len(spooled), measured, measured-len(checks), measured)
	}
	for _, id := range inFlight {
		if !slices.Contains(spooled, id) {
			t.Errorf("result %s was sent before it was spooled", id)
		}
	}

	// Phase 2: the collector is up; restart and stop gracefully.
	col.setAnswer(nil)
	before := tg.total()
	p = startAgent(t, "--config", cfg, "--collector", colURL, "--data-dir", dataDir)
	waitFor(t, 10*time.Second, "every spooled result to arrive, and new ones", func() bool {
		ids, _ := col.received()
		for _, id := range spooled {
			if !ids[id] {
				return false
			}
		}
		return len(ids) >= len(spooled)+len(checks)
	}, p.log)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code, err := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("agent exited %d (%v) after SIGTERM, want 0\n%s", code, err, p.log)
	}
	ids, total := col.received()
	if total <= len(ids) {
		t.Errorf("got %d results with duplicates, %d distinct; want the batch cut off by the kill sent twice", total, len(ids))
	}
	if want := len(spooled) + tg.total() - before; len(ids) != want {
		t.Errorf("got %d distinct ids (%d with duplicates), want %d: the %d spooled before the kill and one per measurement since",
			len(ids), total, want, len(spooled))
	}
	sp, err := spool.Open(filepath.Join(dataDir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Len() != 0 {
		t.Errorf("got %d results still spooled, want 0", sp.Len())
	}
	t.Logf("%d spooled before kill -9 (%d in the batch cut off), %d distinct received, %d with duplicates; %v",
		len(spooled), len(inFlight), len(ids), total, time.Since(start).Round(time.Millisecond))
}

// SIGTERM with a check hanging and the collector down: the agent abandons
// the hung check at --stop-timeout, exits 0 soon after, and every result it
// measured is in the spool for the next start.
func TestSIGTERMLeavesResultsOnDisk(t *testing.T) {
	agentBinary(t)
	tg := newTargets(t)
	col, colURL := newCollector(t)
	col.setAnswer(unavailable(0))
	dataDir := filepath.Join(t.TempDir(), "data")
	slow := slowCheckName(t, "term-test", 10*time.Second, 300*time.Millisecond)
	cfg := writeConfig(t, t.TempDir(), "term-test",
		fmt.Sprintf("{name: fast, kind: http, target: %q, interval: 1s}", tg.URL+"/fast"),
		fmt.Sprintf("{name: %s, kind: http, target: %q, interval: 10s, timeout: 9s}", slow, tg.URL+"/slow"))
	const stopTimeout = time.Second
	p := startAgent(t, "--config", cfg, "--collector", colURL, "--data-dir", dataDir, "--stop-timeout", stopTimeout.String())
	select {
	case <-tg.slowStarted:
	case <-time.After(5 * time.Second):
		t.Fatalf("the slow check did not start\n%s", p.log)
	}
	waitFor(t, 5*time.Second, "two fast measurements", func() bool { return tg.count("/fast") >= 2 }, p.log)

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code, err := p.wait(t, 10*time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("agent exited %d (%v), want 0", code, err)
	}
	if limit := stopTimeout + flushTimeout + time.Second; took > limit {
		t.Errorf("agent took %v to stop, want at most %v (--stop-timeout, then the last ship attempt)", took, limit)
	}
	spooled := spooledIDs(t, dataDir)
	if fast := tg.count("/fast"); len(spooled) != fast {
		t.Errorf("got %d results on disk, want %d: one per fast measurement, none for the abandoned slow one", len(spooled), fast)
	}
	log := p.log.String()
	for _, want := range []string{"abandoned 1 checks", "results left in the spool", fmt.Sprintf("spooled=%d", len(spooled))} {
		if !strings.Contains(log, want) {
			t.Errorf("got log\n%s\nwant it to contain %q", log, want)
		}
	}
	if ids, _ := col.received(); len(ids) != 0 {
		t.Errorf("the down collector accepted %d results", len(ids))
	}
	t.Logf("stopped in %v with %d results spooled", took.Round(time.Millisecond), len(spooled))
}

// slowCheckName finds a check name whose first run comes within limit of
// the start (the stagger is a hash of agent and check), so the test need
// not wait a whole interval.
func slowCheckName(t *testing.T, agent string, interval, limit time.Duration) string {
	t.Helper()
	for i := range 1000 {
		name := fmt.Sprintf("slow-%d", i)
		if sched.Stagger(agent, name, interval) < limit {
			return name
		}
	}
	t.Fatal("no check name with a short stagger")
	return ""
}
