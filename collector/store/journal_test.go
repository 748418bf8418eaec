package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

func tcpRows(n int, tag string) []store.Row {
	rows := make([]store.Row, n)
	for i := range rows {
		r := result.New("a", "c-"+tag, result.KindTCP, "127.0.0.1:1", time.Now())
		r.OK, r.ConnectMs = true, f(float64(i))
		rows[i] = store.Row{Result: *r, Region: "eu", ReceivedAt: time.Now()}
	}
	return rows
}

// waitRows waits until want rows were inserted into results and dir holds
// no segment. It counts inserts in the results_1m rollup, which sees every
// insert (merges of the raw table may fold a duplicate; the rollup never
// does), so a row inserted twice is counted twice.
func waitRows(t *testing.T, conn driver.Conn, dir string, want uint64) {
	t.Helper()
	var n uint64
	var files []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		conn.QueryRow(context.Background(), "SELECT countMerge(n) FROM results_1m").Scan(&n)
		files, _ = filepath.Glob(filepath.Join(dir, "seg-*"))
		if n >= want && len(files) == 0 {
			break
		}
	}
	if n != want || len(files) != 0 {
		t.Fatalf("got %d rows (no FINAL) and spool files %v, want %d inserted, each once, and no files", n, files, want)
	}
}

// A write is acknowledged once it is fsynced to the journal, before its
// batch is inserted: with a 1-minute flush delay it still returns at once,
// and the rows are in the segment file.
func TestJournalAcknowledgesBeforeInsert(t *testing.T) {
	_, conn := chtest.New(t)
	dir := t.TempDir()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: time.Minute, SpoolDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.Write(context.Background(), tcpRows(3, "x")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("write took %v: want the ack before the 1-minute batch delay", d)
	}
	var n uint64
	conn.QueryRow(context.Background(), "SELECT count() FROM results").Scan(&n)
	if n != 0 {
		t.Errorf("got %d rows in ClickHouse before the batch delay, want 0 (only in the journal)", n)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.ndjson"))
	if len(files) != 1 {
		t.Fatalf("got segment files %v, want 1", files)
	}
	data, _ := os.ReadFile(files[0])
	if lines := countLines(data); lines != 3 {
		t.Errorf("segment holds %d lines, want 3", lines)
	}
	w.Close() // the last flush on close inserts them
	waitRows(t, conn, dir, 3)
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

// What a stopped collector could not insert stays on disk and goes in at
// the next start, exactly once; a torn last line (a crash mid-write, never
// acknowledged) is skipped.
func TestJournalRecoversAfterRestart(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	opt := store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: dir, DrainEvery: 20 * time.Millisecond, Logf: t.Logf}
	w, err := store.NewWriter(conn, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "RENAME TABLE results TO results_away"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := w.Write(ctx, tcpRows(10, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.ndjson"))
	if len(files) == 0 {
		t.Fatal("no segment left on disk after closing with ClickHouse away")
	}
	torn, err := os.OpenFile(files[len(files)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn.WriteString(`{"id":"torn","kind":"tc`)
	torn.Close()
	if err := conn.Exec(ctx, "RENAME TABLE results_away TO results"); err != nil {
		t.Fatal(err)
	}

	w2, err := store.NewWriter(conn, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	waitRows(t, conn, dir, 50)
	var marked uint64
	if err := conn.QueryRow(ctx, "SELECT countIf(replay = 1) FROM results").Scan(&marked); err != nil {
		t.Fatal(err)
	}
	if marked != 50 { // an earlier run may have inserted any of them
		t.Errorf("%d of the 50 rows an earlier run left are marked replay = 1: want all", marked)
	}
}

// When rows come faster than the memory queue holds (MemBytes, about two
// writes of ten rows here), the excess is read back from the journal: every
// row is stored, none twice, and none is marked a replay (they were never
// sent before), so queries have nothing to fold.
func TestJournalReadsBackWhatMemoryCouldNotHold(t *testing.T) {
	_, conn := chtest.New(t)
	dir := t.TempDir()
	drained := metrics.GetOrCreateCounter(`meridian_store_spool_drained_total{what="results"}`)
	before := drained.Get()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxRows: 1000, MaxDelay: 50 * time.Millisecond, MemBytes: 8 << 10, SpoolDir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.Write(context.Background(), tcpRows(10, fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitRows(t, conn, dir, 400)
	if n := drained.Get() - before; n == 0 || n >= 400 {
		t.Errorf("%d of 400 rows were read back from the journal: want some, not all (memory holds about 20)", n)
	}
	var marked uint64
	if err := conn.QueryRow(context.Background(), "SELECT countIf(replay = 1) FROM results").Scan(&marked); err != nil {
		t.Fatal(err)
	}
	if marked != 0 {
		t.Errorf("%d rows read back after overflowing memory are marked replay = 1: want 0, they were never sent", marked)
	}
}

// insertLog fails every insert while ClickHouse is away (for
// NewWriterWithFault), and records the rows of the others.
type insertLog struct {
	away  atomic.Bool
	mu    sync.Mutex
	sizes []int
}

func (l *insertLog) fault(rows []store.Row) error {
	if l.away.Load() {
		return errors.New("ClickHouse away (injected)")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sizes = append(l.sizes, len(rows))
	return nil
}

func (l *insertLog) inserts() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sizes)
}

// leaveSegments writes with ClickHouse away in three runs of a writer,
// four writes each (rows(run, i)), and checks that they left three
// segments in opt.SpoolDir. ClickHouse is back when it returns.
func leaveSegments(t *testing.T, conn driver.Conn, opt store.WriterOptions, l *insertLog, rows func(run, i int) []store.Row) {
	t.Helper()
	l.away.Store(true)
	for run := range 3 {
		w, err := store.NewWriterWithFault(conn, opt, l.fault)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			if err := w.Write(context.Background(), rows(run, i)); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
	}
	if files, _ := filepath.Glob(filepath.Join(opt.SpoolDir, "seg-*.ndjson")); len(files) != 3 {
		t.Fatalf("got segments %v, want three, one per run", files)
	}
	l.away.Store(false)
}

// Rows read back from the journal go in as full inserts: what three runs
// of the collector left in three segments is one insert, not one per
// segment. ClickHouse's CPU per row falls with an insert's size.
func TestJournalReadsBackInFullInserts(t *testing.T) {
	_, conn := chtest.New(t)
	dir := t.TempDir()
	opt := store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: dir, DrainEvery: time.Hour, Logf: t.Logf}
	var l insertLog
	leaveSegments(t, conn, opt, &l, func(run, i int) []store.Row { return tcpRows(10, fmt.Sprint(run, "-", i)) })
	w, err := store.NewWriterWithFault(conn, opt, l.fault)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitRows(t, conn, dir, 120)
	if got := l.inserts(); len(got) != 1 || got[0] != 120 {
		t.Errorf("read back in inserts of %v rows, want one of 120", got)
	}
}

// Batch files of the collector's earlier spool are converted and go in:
// an upgrade loses nothing acknowledged.
func TestJournalImportsTheEarlierSpool(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	var lines []byte
	for _, r := range tcpRows(7, "legacy") {
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(append(lines, b...), '\n')
	}
	os.WriteFile(filepath.Join(dir, "batch-00000000000000000001.ndjson"), lines, 0o640)
	os.WriteFile(filepath.Join(dir, "batch-00000000000000000002.ndjson.tmp"), lines, 0o640) // never acknowledged

	bdir := t.TempDir()
	pv := store.BeaconRow{Beacon: store.Beacon{V: 1, Site: "mrs_x", PV: "00000000-0000-4000-8000-00000000abcd", URL: "https://shop.example/", Sample: 1},
		Visitor: store.Visitor{Country: "JP"}, ReceivedAt: time.Now()}
	b, _ := json.Marshal(&pv)
	os.WriteFile(filepath.Join(bdir, "batch-00000000000000000001.ndjson"), append(b, '\n'), 0o640)

	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bw, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: bdir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Close()
	waitRows(t, conn, dir, 7)
	var country string
	for deadline := time.Now().Add(10 * time.Second); country == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		conn.QueryRow(ctx, "SELECT any(country) FROM rum_pageviews WHERE pv = ?", pv.PV).Scan(&country)
	}
	if country != "JP" {
		t.Errorf("the earlier spool's beacon: got country %q, want JP", country)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "batch-*")); len(left) != 0 {
		t.Errorf("earlier spool files left: %v", left)
	}
}

// A write that outlives the writer (a request past the server's shutdown
// timeout) gets ErrClosed, with or without a journal, instead of a panic.
func TestWriteAfterCloseFails(t *testing.T) {
	_, conn := chtest.New(t)
	for _, dir := range []string{"", t.TempDir()} {
		w, err := store.NewWriter(conn, store.WriterOptions{SpoolDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if err := w.Write(context.Background(), tcpRows(1, "late")); !errors.Is(err, store.ErrClosed) {
			t.Errorf("spool dir %q: write after close: got %v, want ErrClosed", dir, err)
		}
	}
}
