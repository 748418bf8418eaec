package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/e2e/faultkit"
)

// Scenarios where the disk fails the journal or the spool, or ClickHouse
// refuses one row.

// journalLine is a journal line's id: a result's id, a beacon's pv.
func journalLineID(line []byte) string {
	var l struct {
		ID     string
		Beacon struct{ PV string }
	}
	json.Unmarshal(line, &l)
	if l.ID != "" {
		return l.ID
	}
	return l.Beacon.PV
}

// account marks the id of a line the scenario damages as accounted for.
func (e *faultEnv) account(line []byte) {
	e.t.Helper()
	id := journalLineID(line)
	if id == "" {
		e.t.Fatalf("cannot read the id of %q", line)
	}
	e.accounted[id] = true
}

// lineAt is line i of data, whose lines start at starts.
func lineAt(data []byte, starts []int, i int) []byte {
	if i+1 < len(starts) {
		return data[starts[i]:starts[i+1]]
	}
	return data[starts[i]:]
}

// lineStarts returns where each complete line of data starts.
func lineStarts(data []byte) []int {
	var starts []int
	for off := 0; off < len(data); {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			break
		}
		starts = append(starts, off)
		off += i + 1
	}
	return starts
}

// damageJournal flips a byte of line 2 of the oldest results segment with
// three lines or more (a bit flip that breaks its JSON), and cuts the
// oldest such beacons segment in the middle of its second-to-last line.
// What it damages is accounted: the flipped line and the cut line are
// quarantined, the lines after the cut destroyed.
func (e *faultEnv) damageJournal(spool string) {
	e.t.Helper()
	name, data, starts := e.segmentWith(filepath.Join(spool, "results"), 3)
	e.account(lineAt(data, starts, 1))
	data[starts[1]] ^= 0x01 // '{' becomes 'z'
	if err := os.WriteFile(name, data, 0o640); err != nil {
		e.t.Fatal(err)
	}
	name, data, starts = e.segmentWith(filepath.Join(spool, "beacons"), 3)
	k := len(starts) - 2
	for i := k; i < len(starts); i++ {
		e.account(lineAt(data, starts, i))
	}
	cut := starts[k] + (starts[k+1]-starts[k])/2
	if err := os.Truncate(name, int64(cut)); err != nil {
		e.t.Fatal(err)
	}
	e.note("c1's journal: 1 results line bit-flipped, a beacons segment cut mid-line (%d beacons acknowledged there destroyed)", len(starts)-k)
}

// segmentWith returns the oldest journal segment in dir with at least min
// complete lines, but not the newest: a torn tail there is a crash's, not
// damage.
func (e *faultEnv) segmentWith(dir string, min int) (string, []byte, []int) {
	e.t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "seg-*.ndjson"))
	sort.Strings(names)
	for _, n := range names[:max(len(names)-1, 0)] {
		data, err := os.ReadFile(n)
		if err != nil {
			e.t.Fatal(err)
		}
		if starts := lineStarts(data); len(starts) >= min {
			return n, data, starts
		}
	}
	e.t.Fatalf("no segment but the newest in %s holds %d lines: the scenario cannot damage one", dir, min)
	return "", nil, nil
}

// damageSpool flips a byte of the second unacknowledged line of a stopped
// agent's newest spool segment and cuts its last line in half: both are
// accounted (quarantined by the agent).
func (e *faultEnv) damageSpool(a *faultAgent) {
	e.t.Helper()
	names, _ := filepath.Glob(filepath.Join(a.dir, "spool", "*.ndjson"))
	if len(names) == 0 {
		e.t.Fatalf("%s has no spool segment to damage", a.name)
	}
	sort.Strings(names)
	name := names[len(names)-1]
	data, err := os.ReadFile(name)
	if err != nil {
		e.t.Fatal(err)
	}
	starts := lineStarts(data)
	var cursor struct{ Offset int }
	if b, err := os.ReadFile(filepath.Join(a.dir, "spool", "cursor")); err == nil {
		json.Unmarshal(b, &cursor) // of this segment: the agent has one, 4 MiB, in a scenario
	}
	first := sort.SearchInts(starts, cursor.Offset)
	if len(starts)-first < 3 {
		e.t.Fatalf("%s holds %d unacknowledged results: want 3 or more to damage", name, len(starts)-first)
	}
	flip, last := starts[first+1], starts[len(starts)-1]
	e.account(lineAt(data, starts, first+1))
	e.account(lineAt(data, starts, len(starts)-1))
	data[flip+len(`{"v":1,"id"`)] ^= 0x01 // the ':' after "id" becomes ';'
	data = data[:last+(len(data)-last)/2]
	if err := os.WriteFile(name, data, 0o640); err != nil {
		e.t.Fatal(err)
	}
	// The agent cuts the torn line on start; the poller goes on from there.
	a.mu.Lock()
	a.read[name] = &spoolRead{off: int64(last), lines: int64(len(starts) - 1)}
	a.mu.Unlock()
	e.note("%s's spool: 1 unsent result bit-flipped, the last one cut in half", a.name)
}

// faultDamagedSegments: collector 1 (inserting only hourly, so its journal
// holds what it acknowledged) is killed and its journal damaged; agent 2,
// cut off, is stopped and its spool damaged; both start again. The
// readable rest goes in, the damaged lines are quarantined (moved aside,
// counted in /metrics), and neither process crash-loops.
func faultDamagedSegments(t *testing.T) {
	e := newFaultEnv(t, faultOptions{serve: [2][]string{{"--flush-interval", "1h"}}, pins: map[int]int{0: 1, 2: 1}})
	a := e.agents[1]
	time.Sleep(2 * time.Second)
	a.proxy.Cut()
	time.Sleep(3 * time.Second)
	c1 := e.cols[0]
	c1.proc.Kill()
	e.damageJournal(c1.spool)
	if err := a.proc.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	e.readSpool(a)
	a.poll.Store(false)
	e.damageSpool(a)
	e.startCollector(0, "--flush-interval", "250ms")
	a.poll.Store(true)
	e.startAgent(1)
	a.proxy.Heal()
	// The agent quarantines the flipped line when it ships past it.
	var agentDamaged float64
	faultWait(time.Minute, func() bool {
		agentDamaged = e.agentMetric(1, "meridian_agent_spool_damaged_total")
		return agentDamaged >= 2
	})
	spoolMoved, _ := filepath.Glob(filepath.Join(a.dir, "spool", "*.damaged"))
	if agentDamaged != 2 || len(spoolMoved) == 0 {
		t.Errorf("agent-2: meridian_agent_spool_damaged_total %v, quarantine files %v: want 2 and a *.damaged file", agentDamaged, spoolMoved)
	}
	e.finish() // the journals are read back and empty: the damage is dealt with
	if !c1.proc.Running() {
		t.Fatalf("collector 1 exited after starting on a damaged journal:\n%s", c1.proc.Tail(20))
	}
	damaged := e.metric("meridian_store_spool_damaged_total", "")
	quarantined := e.metric("meridian_store_spool_quarantined_total", "")
	moved, _ := filepath.Glob(filepath.Join(c1.spool, "*", "*.damaged"))
	if damaged != 2 || quarantined != 2 || len(moved) != 2 {
		t.Errorf("collector 1: %v damaged lines, %v segments quarantined, files %v: want 2, 2 and two *.damaged files", damaged, quarantined, moved)
	}
	e.note("quarantined: c1 %v lines in %v segments, agent-2 %v lines", damaged, quarantined, agentDamaged)
}

// faultJournalDiskFull: collector 1's spool dir is a 2 MiB tmpfs, filled up
// by a ballast file: its ingest answers 503 (not 500, no crash) until the
// ballast goes, then takes posts again.
func faultJournalDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c1-tmpfs")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 2 MiB tmpfs under the journal (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	e := newFaultEnv(t, faultOptions{spoolDirs: [2]string{dir, ""}})
	time.Sleep(2 * time.Second)
	ballast := filepath.Join(dir, "ballast")
	stopFill := fill(t, ballast)
	c1 := e.cols[0].listen
	full := func(p faultkit.Post) bool { return p.Upstream == c1 && p.Status == 503 }
	if !faultWait(20*time.Second, func() bool { return e.countPosts(full) >= 2 }) {
		t.Errorf("collector 1 did not answer 503 within 20s of its journal's disk filling up")
	}
	time.Sleep(soak(3*time.Second, 30*time.Second))
	if !e.cols[0].proc.Running() {
		t.Fatalf("collector 1 exited on a full disk:\n%s", e.cols[0].proc.Tail(20))
	}
	stopFill()
	os.Remove(ballast)
	freed := time.Now()
	time.Sleep(3 * time.Second)
	broken := e.countPosts(func(p faultkit.Post) bool { return p.Upstream == c1 && p.Status >= 500 && p.Status != 503 })
	resumed := e.countPosts(func(p faultkit.Post) bool { return p.Upstream == c1 && p.Status/100 == 2 && p.Sent.After(freed) })
	if broken > 0 || resumed == 0 {
		t.Errorf("collector 1 on a full disk: %d answers 5xx other than 503, %d acknowledged once space freed: want 0 and some", broken, resumed)
	}
	e.note("c1's disk full: %d posts answered 503, none 500; %d acknowledged once space freed", e.countPosts(full), resumed)
	e.finish()
}

// fill writes name until the file system is full, and keeps it full (the
// journal frees the space of each segment it inserted, enough for the
// next) until stop is called.
func fill(t *testing.T, name string) (stop func()) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	top := func() {
		for chunk := make([]byte, 4<<10); ; {
			if _, err := f.Write(chunk); err != nil {
				return
			}
		}
	}
	top()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				top()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		f.Close()
	}
}

// faultPoisonRow: results of agent 1's check "poison" are refused by
// ClickHouse (a MATERIALIZED throwIf column) inside batches of good rows:
// each is dead-lettered beside the journal with the server's error and
// counted in /metrics, and every other row is stored.
func faultPoisonRow(t *testing.T) {
	e := newFaultEnv(t, faultOptions{checks: map[int]string{0: "  - {name: poison, kind: tcp, target: \"TARGET\", interval: 1s}\n"},
		setup: func(e *faultEnv) {
			e.sql("ALTER TABLE results ADD COLUMN poison UInt8 MATERIALIZED throwIf(check_name = 'poison')")
		}})
	time.Sleep(5 * time.Second)
	e.beforeTally = func(faultkit.Stored) {
		dead := e.deadLetters()
		counted := e.metric("meridian_store_deadletter_rows_total", `what="results"`)
		poison := 0
		for id, it := range e.led.Items(faultkit.Results) {
			if strings.Split(it.Sum, "|")[2] != "poison" {
				continue
			}
			poison++
			if !dead[id] {
				t.Errorf("poison result %s is not in a dead-letter file", id)
			}
			e.accounted[id] = true
		}
		if poison == 0 || len(dead) != poison || int(counted) != poison {
			t.Errorf("%d poison results, %d dead-lettered, meridian_store_deadletter_rows_total %v: want all equal and > 0", poison, len(dead), counted)
		}
		e.note("%d poison rows dead-lettered (meridian_store_deadletter_rows_total %v)", len(dead), counted)
	}
	e.finish()
}

// deadLetters reads the ids in the collectors' results dead-letter files.
func (e *faultEnv) deadLetters() map[string]bool {
	ids := map[string]bool{}
	for _, c := range e.cols {
		names, _ := filepath.Glob(filepath.Join(c.spool, "results", "deadletter-*.ndjson"))
		for _, n := range names {
			f, err := os.Open(n)
			if err != nil {
				e.t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var l struct{ Row struct{ ID string } }
				if json.Unmarshal(sc.Bytes(), &l) == nil && l.Row.ID != "" {
					ids[l.Row.ID] = true
				}
			}
			f.Close()
		}
	}
	return ids
}
