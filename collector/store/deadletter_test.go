package store_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// poison makes ClickHouse refuse, for its data (throwIf, code 395), every
// row of table whose column col is value, and take every other row.
func poison(t *testing.T, conn driver.Conn, table, col, value string) {
	t.Helper()
	q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN poison UInt8 MATERIALIZED throwIf(%s = '%s')", table, col, value)
	if err := conn.Exec(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

// metric reads a counter of the process's /metrics.
func metric(t *testing.T, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, false)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

type deadLetter struct {
	Time    time.Time       `json:"time"`
	What    string          `json:"what"`
	Code    int32           `json:"code"`
	Error   string          `json:"error"`
	Segment string          `json:"segment"`
	Line    int             `json:"line"`
	Row     json.RawMessage `json:"row"`
}

// deadLetters reads every dead letter in dir.
func deadLetters(t *testing.T, dir string) []deadLetter {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "deadletter-*.ndjson"))
	var out []deadLetter
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, len(data)+1)
		for sc.Scan() {
			var d deadLetter
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("%s: %q is not a dead letter: %v", name, sc.Text(), err)
			}
			out = append(out, d)
		}
	}
	return out
}

// waitFor polls cond for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// checkResults fails unless results holds want distinct ids, none of them
// target poison-target.
func checkResults(t *testing.T, conn driver.Conn, want uint64) {
	t.Helper()
	var ids, poisoned uint64
	if err := conn.QueryRow(context.Background(), "SELECT uniqExact(id), countIf(target = 'poison-target') FROM results").Scan(&ids, &poisoned); err != nil {
		t.Fatal(err)
	}
	if ids != want || poisoned != 0 {
		t.Errorf("results holds %d ids, %d poisoned rows; want %d and 0", ids, poisoned, want)
	}
}

// One row ClickHouse refuses in a batch of 1,000: the 999 others are stored
// exactly once, the refused one is in the dead-letter file as it was
// journaled with the server's error, and rows written after it go in (the
// journal moves past it). Renamed to resubmit-*.ndjson once the table takes
// it, the dead letter goes in at the next start.
func TestDeadLetterOneRefusedResult(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	poison(t, conn, "results", "target", "poison-target")
	dir := t.TempDir()
	opt := store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: dir, DrainEvery: 50 * time.Millisecond, Logf: tlog(t)}
	w, err := store.NewWriter(conn, opt)
	if err != nil {
		t.Fatal(err)
	}
	deadBefore := metric(t, `meridian_store_deadletter_rows_total{what="results"}`)
	bisectBefore := metric(t, `meridian_store_bisect_inserts_total{what="results"}`)

	rows := tcpRows(1000, "batch")
	rows[500].Target = "poison-target"
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, tcpRows(10, "after")); err != nil {
		t.Fatal(err)
	}
	waitRows(t, conn, dir, 1009) // counts inserts: each good row once
	checkResults(t, conn, 1009)

	dead := deadLetters(t, dir)
	if len(dead) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dead))
	}
	d := dead[0]
	want, _ := json.Marshal(&rows[500]) // the journal line, as the codec wrote it
	if !bytes.Equal(d.Row, want) {
		t.Errorf("dead letter row:\n got %s\nwant %s", d.Row, want)
	}
	if d.What != "results" || d.Code != 395 || !strings.Contains(d.Error, "throwIf") || d.Line != 501 || !strings.HasPrefix(d.Segment, "seg-") {
		t.Errorf("got dead letter %+v, want results, code 395, the throwIf error, line 501 of a segment", d)
	}
	if got := metric(t, `meridian_store_deadletter_rows_total{what="results"}`) - deadBefore; got != 1 {
		t.Errorf("deadletter_rows_total went up by %v, want 1", got)
	}
	if got := metric(t, `meridian_store_bisect_inserts_total{what="results"}`) - bisectBefore; got < 2 || got > 40 {
		t.Errorf("bisect_inserts_total went up by %v, want about 2·log2(1000)", got)
	}
	w.Close()

	// Fixed: the table takes the row now; the operator renames the file.
	if err := conn.Exec(ctx, "ALTER TABLE results DROP COLUMN poison"); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "deadletter-*.ndjson"))
	if err := os.Rename(files[0], filepath.Join(dir, "resubmit-1.ndjson")); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "resubmit-2.ndjson") // not dead letters: left alone
	if err := os.WriteFile(bad, []byte("{\"what\":\"results\"}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	w2, err := store.NewWriter(conn, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	waitRows(t, conn, dir, 1010)
	var id string
	conn.QueryRow(ctx, "SELECT any(id) FROM results WHERE target = 'poison-target'").Scan(&id)
	if id != rows[500].ID {
		t.Errorf("re-submitted row: got id %q, want %q", id, rows[500].ID)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "resubmit-*")); len(left) != 1 || left[0] != bad {
		t.Errorf("got resubmit files %v left, want only the one that holds no dead letter", left)
	}
}

// A row ClickHouse refuses in a read-back insert gathered from several
// segments: those segments are read again run by run, only the run that
// holds the row is bisected, and everything else is stored once. The
// segments are what three runs of the collector left while ClickHouse was
// away; the refused row is in the second.
func TestDeadLetterInAGatheredReadBack(t *testing.T) {
	_, conn := chtest.New(t)
	poison(t, conn, "results", "target", "poison-target")
	dir := t.TempDir()
	opt := store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: dir, DrainEvery: time.Hour, Logf: tlog(t)}
	var l insertLog
	var bad store.Row
	leaveSegments(t, conn, opt, &l, func(run, i int) []store.Row {
		rows := tcpRows(10, fmt.Sprint(run, "-", i))
		if run == 1 && i == 2 {
			rows[3].Target, bad = "poison-target", rows[3]
		}
		return rows
	})
	w, err := store.NewWriterWithFault(conn, opt, l.fault)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitRows(t, conn, dir, 119)
	checkResults(t, conn, 119)
	dead := deadLetters(t, dir)
	if len(dead) != 1 || dead[0].Line != 24 || !strings.Contains(string(dead[0].Row), bad.ID) {
		t.Fatalf("got dead letters %+v, want one: line 24 of the second segment, id %s", dead, bad.ID)
	}
	// 120 refused; the first segment's 40 in; the second's 40 refused,
	// then bisected (halves of 20, 10, 5, 3 or 2, 1); the third's 40 in.
	if s := l.inserts(); len(s) < 5 || s[0] != 120 || s[1] != 40 || s[2] != 40 || s[len(s)-1] != 40 || len(s) > 16 {
		t.Errorf("inserts of %v rows: want 120 (refused), then 40 per segment and the halves of the refused one's bisection", s)
	}
}

// A transient failure in the middle of a bisection (the network, between
// two halves) stops it; what went in is not sent again, and the rest is
// stored once ClickHouse answers again.
func TestDeadLetterSurvivesATransientErrorMidBisection(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	poison(t, conn, "results", "target", "poison-target")
	dir := t.TempDir()
	var injected atomic.Bool
	fault := func(rows []store.Row) error {
		if len(rows) <= 250 && injected.CompareAndSwap(false, true) {
			return errors.New("read tcp: connection reset by peer (injected)")
		}
		return nil
	}
	w, err := store.NewWriterWithFault(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: dir, DrainEvery: 50 * time.Millisecond, Logf: tlog(t)}, fault)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows := tcpRows(1000, "batch")
	rows[700].Target = "poison-target"
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one dead letter", func() bool { return len(deadLetters(t, dir)) == 1 })
	if err := w.Write(ctx, tcpRows(10, "after")); err != nil {
		t.Fatal(err)
	}
	waitRows(t, conn, dir, 1009)
	checkResults(t, conn, 1009)
	if !injected.Load() {
		t.Error("the fault was never injected: the test did not test a bisection cut short")
	}
	if n := len(deadLetters(t, dir)); n != 1 {
		t.Errorf("got %d dead letters, want 1", n)
	}
}

// Beacons share the journal but insert twice (rum_cdn, then
// rum_pageviews): one beacon rum_pageviews refuses is dead-lettered as
// received, the 999 other page views are stored once, and beacons after
// it go in.
func TestDeadLetterOneRefusedBeacon(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	poison(t, conn, "rum_pageviews", "url", "https://poison.example/")
	dir := t.TempDir()
	w, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: dir, DrainEvery: 50 * time.Millisecond, Logf: tlog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	beacons := func(n int, tag string) []store.BeaconRow {
		out := make([]store.BeaconRow, n)
		for i := range out {
			out[i] = store.BeaconRow{
				Beacon: store.Beacon{V: 1, Site: "mrs_x", PV: fmt.Sprintf("00000000-0000-4000-8000-%s%08d", tag, i), URL: "https://shop.example/", Sample: 1,
					Hosts: []store.BeaconHost{{Host: "img.cdn1.example", CDN: "cdn1", Count: 1, MedianMs: f(20)}}},
				Visitor: store.Visitor{Country: "DE", Device: "desktop"}, ReceivedAt: time.Now(),
			}
		}
		return out
	}
	rows := beacons(1000, "0000")
	rows[321].URL = "https://poison.example/"
	rows[321].Raw = []byte(`{"v":1,"site":"mrs_x","pv":"` + rows[321].PV + `","url":"https://poison.example/","sample":1,"webdriver":false}`)
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, beacons(10, "1111")); err != nil {
		t.Fatal(err)
	}
	var views, pvs uint64
	waitFor(t, "1009 page views", func() bool {
		conn.QueryRow(ctx, "SELECT countMerge(pageviews) FROM rum_pageviews_1m").Scan(&views)
		segs, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
		return views >= 1009 && len(segs) == 0
	})
	conn.QueryRow(ctx, "SELECT uniqExact(pv) FROM rum_pageviews").Scan(&pvs)
	if views != 1009 || pvs != 1009 {
		t.Errorf("got %d page views inserted, %d distinct; want 1009 each (every good one once)", views, pvs)
	}
	dead := deadLetters(t, dir)
	if len(dead) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dead))
	}
	if d := dead[0]; d.What != "beacons" || d.Code != 395 || !bytes.Contains(d.Row, []byte(`"beacon":`+string(rows[321].Raw))) {
		t.Errorf("got dead letter %+v (row %s), want the beacon as received, code 395", d, d.Row)
	}
}

// Without a journal a refused row fails only the request that sent it,
// not the others its batch gathered.
func TestRefusedRowFailsOnlyItsRequest(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	poison(t, conn, "results", "target", "poison-target")
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bad := tcpRows(5, "bad")
	bad[2].Target = "poison-target"
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, rows := range [][]store.Row{tcpRows(5, "a"), bad, tcpRows(5, "b")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Write(ctx, rows)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[2] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "395") {
		t.Errorf("got errors %v, want only the poisoned request's, with code 395", errs)
	}
	checkResults(t, conn, 10)
}

func tlog(t *testing.T) func(string, ...any) {
	return func(f string, a ...any) { t.Logf(time.Now().Format("15:04:05.000 ")+f, a...) }
}
