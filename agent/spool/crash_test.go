package spool

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

const crashDirEnv = "MERIDIAN_SPOOL_CRASH_DIR"

// crashChild appends and acks in a loop until it is killed. It announces each
// step before ("W ids", "S ids") and confirms it after it returned ("A", "K"),
// one write per line, so the parent knows what was promised when it died.
func crashChild(dir string) {
	s, err := Open(dir, Options{SegmentBytes: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := 0; i < 1e6; i++ {
		rs := newResults(1 + i%40)
		fmt.Fprintf(os.Stdout, "W %s\n", strings.Join(idsOf(rs), " "))
		if err := s.Append(rs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Stdout.WriteString("A\n")
		if i%3 == 0 {
			b, err := s.Next(1 + i%50)
			if err == nil {
				fmt.Fprintf(os.Stdout, "S %s\n", strings.Join(b.IDs, " "))
				err = s.Ack(b)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			os.Stdout.WriteString("K\n")
		}
	}
	os.Exit(4) // never killed: the parent is gone
}

// crashLog is what the child said before it was killed.
type crashLog struct {
	appended, acked []string // confirmed: Append or Ack returned
	writing, acking []string // announced, not confirmed
}

// runChild starts a child on dir, SIGKILLs it once it has appended about
// killAfter results, and returns what it confirmed.
func runChild(t *testing.T, dir string, killAfter int) crashLog {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var l crashLog
	killed := false
	br := bufio.NewReader(out)
	for {
		line, err := br.ReadString('\n')
		if err != nil { // EOF; an unterminated last line confirms nothing
			break
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "W":
			l.writing = f[1:]
		case f[0] == "A":
			l.appended, l.writing = append(l.appended, l.writing...), nil
		case f[0] == "S":
			l.acking = f[1:]
		case f[0] == "K":
			l.acked, l.acking = append(l.acked, l.acking...), nil
		}
		if !killed && len(l.appended) >= killAfter {
			// SIGKILL (no deferred code, no Close) a moment later, so it
			// lands anywhere: in a write, an fsync, a cursor rename.
			time.AfterFunc(rand.N(3*time.Millisecond), func() { cmd.Process.Kill() })
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed: %v\n%s", err, stderr.String())
	}
	return l
}

// TestCrash kills a writing, acking agent at random moments and checks that
// a restart hands out exactly what was appended and not acked: nothing lost,
// nothing repeated, nothing acked coming back.
func TestCrash(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	for round := range 5 {
		l := runChild(t, dir, 300+rand.IntN(3000))
		if !slices.Equal(l.acked, l.appended[:len(l.acked)]) {
			t.Fatalf("round %d: acked ids are not a prefix of appended ids", round)
		}
		var log logBuf
		s := mustOpen(t, dir, Options{SegmentBytes: 64 << 10, Logf: log.logf})
		start := time.Now()
		got := drain(t, s, 1000)
		s.Close()
		ackedInFlight, written := checkRedelivery(t, round, l, got)
		t.Logf("round %d: killed at %d appended, %d acked, in flight %d appending (%d kept) and %d acking (durable: %v); %d redelivered in %v; repairs: %q",
			round, len(l.appended), len(l.acked), len(l.writing), written, len(l.acking), ackedInFlight, len(got), time.Since(start), log.String())
	}
}

// checkRedelivery accepts got only if it is the appended results after the
// durable cursor (which includes the in-flight ack batch or not), followed
// by a prefix of the batch whose Append had not returned.
func checkRedelivery(t *testing.T, round int, l crashLog, got []string) (ackedInFlight bool, written int) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("round %d: id %s delivered twice after restart", round, id)
		}
		seen[id] = true
	}
	for _, skip := range []int{len(l.acked), len(l.acked) + len(l.acking)} {
		rest := l.appended[skip:]
		if len(got) >= len(rest) && slices.Equal(got[:len(rest)], rest) &&
			len(got)-len(rest) <= len(l.writing) && slices.Equal(got[len(rest):], l.writing[:len(got)-len(rest)]) {
			return skip > len(l.acked), len(got) - len(rest)
		}
	}
	t.Fatalf("round %d: after restart got %d ids, want the %d appended after the %d acked (or after the %d in flight), then at most %d being written",
		round, len(got), len(l.appended)-len(l.acked), len(l.acked), len(l.acking), len(l.writing))
	return false, 0
}
