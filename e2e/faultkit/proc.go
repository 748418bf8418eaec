package faultkit

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a real process of the suite (a collector, an agent). Its output
// goes to a log file rather than the test log: scenarios kill and restart
// processes, and a goroutine logging after its test ended would panic.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts bin with args and env (added to the test's), appending its
// output to logPath. It is killed with tb if still running.
func Start(tb testing.TB, name, logPath string, env []string, bin string, args ...string) *Proc {
	tb.Helper()
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer log.Close()
	fmt.Fprintf(log, "==== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("cannot start %s: %v", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() { p.Kill() })
	return p
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	if p.Running() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; past it the
// process is killed and Stop says so.
func (p *Proc) Stop(timeout time.Duration) error {
	if !p.Running() {
		return fmt.Errorf("%s had exited already: %v", p.Name, p.err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s exited with %v on SIGTERM", p.Name, p.err)
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %v of SIGTERM", p.Name, timeout)
	}
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// WaitUp waits until p serves url with a 200, failing at once, with its
// last log lines, when p exits first.
func WaitUp(tb testing.TB, p *Proc, url string, within time.Duration) {
	tb.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !p.Running() {
			tb.Fatalf("%s exited before serving %s: %v\n%s", p.Name, url, p.err, p.Tail(10))
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	tb.Fatalf("%s did not answer 200 at %s within %v", p.Name, url, within)
}

// Metric sums the samples of a Prometheus metric family served at url
// whose labels contain match ("" for any).
func Metric(url, name, match string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return sumMetric(resp.Body, name, match)
}

func sumMetric(r io.Reader, name, match string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') || !strings.Contains(rest, match) {
			continue
		}
		f, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += f
	}
	return sum, sc.Err()
}
