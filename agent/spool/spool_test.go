package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// logBuf collects a Spool's log lines for assertions.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func mustOpen(tb testing.TB, dir string, opts Options) *Spool {
	tb.Helper()
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	s, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func f64(v float64) *float64 { return &v }

// newResults returns n valid results shaped like a real HTTP check's.
func newResults(n int) []*result.Result {
	out := make([]*result.Result, n)
	start := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	for i := range out {
		r := result.New("ams-1", "home", result.KindHTTP, "https://example.com/", start.Add(time.Duration(i)*time.Second))
		r.OK = true
		r.DNSMs, r.ConnectMs, r.TLSMs, r.TTFBMs, r.TotalMs = f64(12.5), f64(20.25), f64(41), f64(88.125), f64(165)
		r.HTTP = &result.HTTP{URL: "https://example.com/", Status: 200, Proto: "HTTP/2.0", CDN: "cloudflare", CDNPoP: "AMS", CDNCache: "hit"}
		out[i] = r
	}
	return out
}

func idsOf(rs []*result.Result) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}

func mustAppend(tb testing.TB, s *Spool, rs []*result.Result) {
	tb.Helper()
	if err := s.Append(rs); err != nil {
		tb.Fatalf("Append: %v", err)
	}
}

func mustNext(tb testing.TB, s *Spool, max int) Batch {
	tb.Helper()
	b, err := s.Next(max)
	if err != nil {
		tb.Fatalf("Next(%d): %v", max, err)
	}
	return b
}

func mustAck(tb testing.TB, s *Spool, b Batch) {
	tb.Helper()
	if err := s.Ack(b); err != nil {
		tb.Fatalf("Ack: %v", err)
	}
}

// drain reads and acks everything pending, returning the ids in order.
func drain(tb testing.TB, s *Spool, max int) []string {
	tb.Helper()
	var ids []string
	for {
		b := mustNext(tb, s, max)
		if b.Len() == 0 {
			return ids
		}
		ids = append(ids, b.IDs...)
		mustAck(tb, s, b)
	}
}

func equalIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %d ids %v\nwant %d ids %v", what, len(got), got, len(want), want)
	}
}

func TestRoundTrip(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	rs := newResults(15)
	for i := 0; i < 15; i += 5 {
		mustAppend(t, s, rs[i:i+5])
	}
	if got, want := s.Len(), 15; got != want {
		t.Fatalf("Len: got %d, want %d", got, want)
	}
	if got, want := resultsGauge.Get(), 15.0; got != want {
		t.Fatalf("meridian_agent_spool_results: got %v, want %v", got, want)
	}
	b := mustNext(t, s, 7)
	equalIDs(t, "first Next", b.IDs, idsOf(rs[:7]))
	again := mustNext(t, s, 7)
	equalIDs(t, "Next before Ack", again.IDs, b.IDs)
	mustAck(t, s, b)
	mustAck(t, s, again) // already acked: a no-op
	if got, want := s.Len(), 8; got != want {
		t.Fatalf("Len after ack: got %d, want %d", got, want)
	}
	b = mustNext(t, s, 100)
	got, err := result.DecodeNDJSON(bytes.NewReader(b.Data))
	if err != nil {
		t.Fatalf("DecodeNDJSON(batch): %v", err)
	}
	if len(got) != 8 || got[0].ID != rs[7].ID || got[7].TS != rs[14].TS || *got[7].TTFBMs != 88.125 {
		t.Fatalf("batch decodes to %d results starting %s, want 8 starting %s", len(got), got[0].ID, rs[7].ID)
	}
	equalIDs(t, "second Next", b.IDs, idsOf(rs[7:]))
	mustAck(t, s, b)
	if b := mustNext(t, s, 100); b.Len() != 0 || s.Len() != 0 {
		t.Fatalf("after acking everything: Next gave %d, Len %d; want 0, 0", b.Len(), s.Len())
	}
}

func TestReopenResumesAfterAck(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	rs := newResults(10)
	mustAppend(t, s, rs)
	mustAck(t, s, mustNext(t, s, 4))
	sent := mustNext(t, s, 3) // sent, never acked: must come back
	equalIDs(t, "unacked batch", sent.IDs, idsOf(rs[4:7]))
	s.Close()

	s = mustOpen(t, dir, Options{})
	if got, want := s.Len(), 6; got != want {
		t.Fatalf("Len after reopen: got %d, want %d", got, want)
	}
	equalIDs(t, "after reopen", drain(t, s, 4), idsOf(rs[4:]))
	s.Close()

	s = mustOpen(t, dir, Options{})
	if got := s.Len(); got != 0 {
		t.Fatalf("Len after draining and reopening: got %d, want 0", got)
	}
	more := newResults(2)
	mustAppend(t, s, more)
	equalIDs(t, "appended after reopen", drain(t, s, 10), idsOf(more))
}

func TestTornLastLineIsCut(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	rs := newResults(3)
	mustAppend(t, s, rs)
	s.Close()
	seg := filepath.Join(dir, segName(1))
	good, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"v":1,"id":"019abcde-0000-7000-8000-00000000`) // kill -9 mid-write
	f.Close()

	var log logBuf
	s = mustOpen(t, dir, Options{Logf: log.logf})
	if !strings.Contains(log.String(), "torn last line (45 bytes)") {
		t.Fatalf("log: got %q, want a line about the torn last line", log.String())
	}
	if fi, _ := os.Stat(seg); fi.Size() != good.Size() {
		t.Fatalf("segment size after Open: got %d, want %d", fi.Size(), good.Size())
	}
	more := newResults(2)
	mustAppend(t, s, more) // lands after the complete lines, not after the torn bytes
	equalIDs(t, "after repair", drain(t, s, 100), append(idsOf(rs), idsOf(more)...))
}

func TestDamagedLineIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	rs := newResults(2)
	mustAppend(t, s, rs[:1])
	s.Close()
	f, _ := os.OpenFile(filepath.Join(dir, segName(1)), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("\x00\x00\x00\n"))
	f.Close()

	var log logBuf
	s = mustOpen(t, dir, Options{Logf: log.logf})
	mustAppend(t, s, rs[1:])
	before := droppedTotal.Get()
	equalIDs(t, "around damage", drain(t, s, 100), idsOf(rs))
	if got := droppedTotal.Get() - before; got != 1 {
		t.Fatalf("meridian_agent_spool_dropped_total grew by %d, want 1", got)
	}
	if !strings.Contains(log.String(), "dropped 1 damaged lines") {
		t.Fatalf("log: got %q, want it to report the damaged line", log.String())
	}
}

func TestCapDropsOldestSegments(t *testing.T) {
	var log logBuf
	opts := Options{MaxBytes: 8 << 10, SegmentBytes: 2 << 10, Logf: log.logf}
	s := mustOpen(t, t.TempDir(), opts)
	before := droppedTotal.Get()
	rs := newResults(200)
	mustAppend(t, s, rs[:4])
	mustAck(t, s, mustNext(t, s, 3)) // acked results are not counted as dropped
	stale := mustNext(t, s, 1)       // its segment is dropped before it is acked
	for i := 4; i < len(rs); i += 2 {
		mustAppend(t, s, rs[i:i+2])
		if s.Bytes() > opts.MaxBytes {
			t.Fatalf("after %d results: Bytes %d over the cap %d", i+2, s.Bytes(), opts.MaxBytes)
		}
	}
	dropped := int(droppedTotal.Get() - before)
	if dropped == 0 || dropped != int(s.dropped) {
		t.Fatalf("meridian_agent_spool_dropped_total grew by %d, spool counted %d; want equal and > 0", dropped, s.dropped)
	}
	if got, want := s.Len(), len(rs)-3-dropped; got != want {
		t.Fatalf("Len: got %d, want %d (200 appended, 3 acked, %d dropped)", got, want, dropped)
	}
	if !strings.Contains(log.String(), "unsent results") || !strings.Contains(log.String(), "over its 8192-byte cap") {
		t.Fatalf("log: got %q, want drops reported with the reason", log.String())
	}
	n := s.Len()
	mustAck(t, s, stale)
	if s.Len() != n {
		t.Fatalf("Len after acking a batch the cap dropped: got %d, want %d", s.Len(), n)
	}
	want := idsOf(rs[len(rs)-n:]) // the newest survive
	equalIDs(t, "survivors", drain(t, s, 50), want)
}

func TestOpenRefusesBadCapAndSharedDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{MaxBytes: 1 << 20, SegmentBytes: 1 << 20}); err == nil || !strings.Contains(err.Error(), "twice the segment size") {
		t.Fatalf("Open with cap < 2 segments: got %v, want an error naming the fix", err)
	}
	s := mustOpen(t, dir, Options{MaxBytes: 1 << 20}) // segments shrink to fit a small cap
	if got, want := s.opts.SegmentBytes, int64(128<<10); got != want {
		t.Fatalf("SegmentBytes for a 1 MiB cap: got %d, want %d", got, want)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "another meridian-agent") {
		t.Fatalf("second Open of one dir: got %v, want a lock error", err)
	}
}

func TestConcurrentAppendAndShip(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{SegmentBytes: 8 << 10, MaxBytes: 1 << 30})
	rs := newResults(1000)
	appended := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < len(rs); i += 5 {
			if err := s.Append(rs[i : i+5]); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			select {
			case appended <- struct{}{}:
			default:
			}
		}
	})
	var got []string
	for len(got) < len(rs) {
		b, err := s.Next(17)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if b.Len() == 0 {
			<-appended
			continue
		}
		got = append(got, b.IDs...)
		if err := s.Ack(b); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	wg.Wait()
	equalIDs(t, "shipped", got, idsOf(rs))
	if s.Len() != 0 {
		t.Fatalf("Len: got %d, want 0", s.Len())
	}
	if n, _ := filepath.Glob(filepath.Join(s.dir, "*"+segSuffix)); len(n) != 1 {
		t.Fatalf("segments left after acking everything: got %v, want only the one being written", n)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := mustOpen(b, b.TempDir(), Options{MaxBytes: 1 << 30, Logf: func(string, ...any) {}})
	batch := newResults(100)
	var size int
	for _, r := range batch {
		line, _ := result.AppendNDJSON(nil, r)
		size += len(line)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "results/s")
}

func BenchmarkNextAck(b *testing.B) {
	s := mustOpen(b, b.TempDir(), Options{MaxBytes: 1 << 30, Logf: func(string, ...any) {}})
	batch := newResults(500)
	for b.Loop() {
		b.StopTimer()
		mustAppend(b, s, batch)
		b.StartTimer()
		if n := mustNext(b, s, 500); n.Len() != 500 {
			b.Fatalf("Next: got %d, want 500", n.Len())
		} else {
			mustAck(b, s, n)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "results/s")
}

// shipQueue is agent/ship.Queue, restated so this package need not import it.
type shipQueue interface {
	Peek(n int) []*result.Result
	Ack(n int)
}

var _ shipQueue = (*Queue)(nil)

func TestQueuePartialAckAndResults(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{SegmentBytes: 1 << 10, MaxBytes: 1 << 20}) // batches span segments
	rs := newResults(12)
	for i := 0; i < len(rs); i += 3 {
		mustAppend(t, s, rs[i:i+3])
	}
	q := s.Queue()
	got := q.Peek(10)
	equalIDs(t, "Peek", idsOf(got), idsOf(rs[:10]))
	if err := got[9].Validate(); err != nil || got[9].TTFBMs == nil || *got[9].TTFBMs != 88.125 {
		t.Fatalf("Peek()[9]: got %+v (Validate: %v), want the appended result", got[9], err)
	}
	q.Ack(4) // the shipper sent only part of what it peeked
	if got, want := q.Len(), 8; got != want {
		t.Fatalf("Len after Ack(4): got %d, want %d", got, want)
	}
	s.Close()
	s = mustOpen(t, dir, Options{SegmentBytes: 1 << 10, MaxBytes: 1 << 20})
	equalIDs(t, "after partial ack and reopen", drain(t, s, 5), idsOf(rs[4:]))
}

// sink is agent/sched.Sink, which Queue also is.
type sink interface{ Publish([]*result.Result) }

var _ sink = (*Queue)(nil)

func TestQueuePublish(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	q := s.Queue()
	rs := newResults(3)
	q.Publish(rs)
	s.Close() // Publish wrote them: a reopen (as after kill -9) has them
	s = mustOpen(t, dir, Options{})
	equalIDs(t, "after Publish and reopen", drain(t, s, 10), idsOf(rs))

	var log logBuf
	s = mustOpen(t, t.TempDir(), Options{Logf: log.logf})
	q = s.Queue()
	s.Close()
	before := droppedTotal.Get()
	q.Publish(newResults(2)) // after Close: dropped, counted and logged, never silently
	if got := droppedTotal.Get() - before; got != 2 || s.dropped != 2 || !strings.Contains(log.String(), "spool: dropped 2 results that cannot be spooled: spool is closed") {
		t.Errorf("got %d dropped (spool says %d), log %q; want 2 and a log line", got, s.dropped, log.String())
	}
}
