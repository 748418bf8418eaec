package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"encoding/json"

	"github.com/VictoriaMetrics/metrics"
)

// ErrSpoolFull means the collector's journal is at its cap (ClickHouse has
// been away or slow for long); callers answer 503 with Retry-After so
// senders keep their data.
var ErrSpoolFull = errors.New("the collector's spool is full: ClickHouse is unavailable or too slow")

// ErrBatchTooLarge means one write is larger than the journal's whole cap:
// waiting would never make room, so callers answer 413 (agents then send
// smaller batches) instead of 503.
var ErrBatchTooLarge = errors.New("the batch is larger than the collector's spool can ever hold: send smaller batches")

// journal makes writes durable before ClickHouse sees them: a write is
// appended to the current segment file and acknowledged once that file is
// fsynced (group commit: one fsync for every write that arrived meanwhile).
// Its rows also go to an in-memory queue from which an inserter sends
// large batches to ClickHouse; a segment file is deleted once every row in
// it is in ClickHouse. When ClickHouse fails or falls behind, the rows stay
// only on disk and are inserted from there when it takes inserts again —
// also after a restart. So acknowledgement costs an fsync, not an insert,
// and batches are as large as ClickHouse likes whatever the ack latency.
//
// A segment is one fsynced file of JSON lines. A crash can leave a torn
// last line in the segment it was appending to (the newest one at the next
// start); it was never acknowledged and is skipped. A line that does not
// decode, or a torn last line in any other segment (a truncated file), is
// damage: it is skipped, counted, and its segment is moved aside
// (quarantined) once the readable rows are in.
type journal[T any] struct {
	what     string // "results", "beacons": for logs and metrics
	dir      string
	maxBytes int64
	opt      WriterOptions
	send     func([]T) error
	codec    codec[T]
	logf     func(format string, args ...any)
	dead     *deadLetters // rows ClickHouse refuses on their own
	crashSeg uint64       // the newest segment an earlier run left (+1; 0: none): a torn tail there is a crash's

	in     chan *journalReq[T]
	gate   gate
	bufs   lineBufs     // for writes' lines
	bytes  atomic.Int64 // segment files on disk, the current one included
	fsyncs *metrics.Histogram

	mu       sync.Mutex // guards queue and memBytes
	queue    []journalEntry[T]
	memBytes int64         // journal bytes of the rows held in memory (queued, waiting or being inserted)
	wake     chan struct{} // 1-buffered: the queue has news

	stop        chan struct{} // closed by close: the inserter finishes
	committerWG sync.WaitGroup
	inserterWG  sync.WaitGroup
}

type journalReq[T any] struct {
	items []T
	lines []byte // items encoded, one JSON line each
	size  int    // len(lines), kept after lines go back to the pool
	done  chan error
}

// journalEntry tells the inserter about a segment: rows appended to it
// (lines first..first+len(items), size bytes of them), that it holds rows
// not in memory (lost), that it is complete (sealed), or that an earlier
// run left it (earlier: any of its rows may be in ClickHouse already).
type journalEntry[T any] struct {
	seg     uint64
	first   int
	items   []T
	size    int
	lost    bool
	sealed  bool
	earlier bool
}

// A segment is sealed after segmentMaxAge or at segmentMaxBytes, whichever
// comes first. Read-back loads a whole segment, so its size bounds that
// memory: at 16 MiB the loaded segment was the largest item of the live
// heap under saturation, when most read-back happens (a heap profile in
// make bench's beacon load); at 4 MiB (about 3,000 beacons, a quarter
// second at full load) it is gone from the top. A segment costs one
// directory fsync more per 4 MiB.
const (
	segmentMaxBytes = 4 << 20
	segmentMaxAge   = time.Second
)

// codec turns a row into one journal line and back.
type codec[T any] struct {
	encode func(dst []byte, item *T) ([]byte, error) // appends a line, '\n' included; may drop what the line now holds
	decode func(line []byte) (T, error)
	// replay marks an item read back from the journal as possibly stored
	// already (Row.Replay): an insert of it may have landed before a
	// failure or a restart. Rows that only overflowed memory were never
	// sent and are not marked, so queries fold only real replays.
	replay func(item *T)
}

// jsonCodec is encoding/json, one object per line.
func jsonCodec[T any]() codec[T] {
	return codec[T]{
		encode: func(dst []byte, item *T) ([]byte, error) {
			line, err := json.Marshal(item) // escapes every newline inside strings
			return append(append(dst, line...), '\n'), err
		},
		decode: func(line []byte) (T, error) {
			var item T
			err := json.Unmarshal(line, &item)
			return item, err
		},
	}
}

func openJournal[T any](what, dir string, opt WriterOptions, c codec[T], send func([]T) error) (*journal[T], error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create spool directory %q: %w", dir, err)
	}
	j := &journal[T]{
		what: what, dir: dir, maxBytes: opt.SpoolMaxBytes, opt: opt, send: send, codec: c, logf: opt.Logf, dead: newDeadLetters(what, dir),
		in: make(chan *journalReq[T], opt.Queue), wake: make(chan struct{}, 1), stop: make(chan struct{}), bufs: newLineBufs(),
	}
	if j.maxBytes <= 0 {
		j.maxBytes = 1 << 30
	}
	if j.opt.DrainEvery <= 0 {
		j.opt.DrainEvery = 2 * time.Second
	}
	if j.opt.MemBytes <= 0 {
		j.opt.MemBytes = 16 << 20
	}
	if j.logf == nil {
		j.logf = func(string, ...any) {}
	}
	j.fsyncs = metrics.GetOrCreateHistogram(`meridian_store_journal_fsync_seconds{what="` + what + `"}`)
	// What an earlier run left is complete and goes in from disk.
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	var next uint64
	if len(segs) > 0 {
		j.crashSeg = segs[len(segs)-1] + 1
	}
	for _, s := range segs {
		if fi, err := os.Stat(j.path(s)); err == nil {
			j.bytes.Add(fi.Size())
		}
		next = s + 1
		j.queue = append(j.queue, journalEntry[T]{seg: s, lost: true, sealed: true, earlier: true})
	}
	legacy, err := j.importLegacy(next)
	if err != nil {
		return nil, err
	}
	resubmits, err := j.importResubmits(next + uint64(len(legacy)))
	if err != nil {
		return nil, err
	}
	for _, s := range append(legacy, resubmits...) {
		next = s + 1
		j.queue = append(j.queue, journalEntry[T]{seg: s, lost: true, sealed: true, earlier: true})
	}
	if n := len(segs) + len(legacy) + len(resubmits); n > 0 {
		j.logf("%d %s segments left from an earlier run go into ClickHouse from %s", n, what, dir)
	}
	metrics.GetOrCreateGauge(`meridian_store_spool_bytes{what="`+what+`"}`, func() float64 { return float64(j.bytes.Load()) })
	j.committerWG.Add(1)
	go j.commitLoop(next)
	j.inserterWG.Add(1)
	go j.insertLoop()
	return j, nil
}

func (j *journal[T]) path(seg uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("seg-%020d.ndjson", seg))
}

// segments lists the segment files, oldest first.
func (j *journal[T]) segments() ([]uint64, error) {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read spool directory %q: %w", j.dir, err)
	}
	var out []uint64
	for _, e := range entries {
		var n uint64
		if _, err := fmt.Sscanf(e.Name(), "seg-%020d.ndjson", &n); err == nil && strings.HasSuffix(e.Name(), ".ndjson") {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out, nil
}

// importLegacy turns the batch files of the collector's earlier spool (one
// fsynced file of encoding/json lines per batch that ClickHouse refused)
// into segments numbered from next, so an upgrade loses nothing. A
// leftover .tmp was never acknowledged.
func (j *journal[T]) importLegacy(next uint64) ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "batch-*.ndjson*"))
	if err != nil || len(names) == 0 {
		return nil, err
	}
	sort.Strings(names)
	var segs []uint64
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(name)
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("cannot read the earlier spool's %s: %w", name, err)
		}
		var lines []byte
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, len(data)+1)
		sc.Split(scanFullLines)
		for sc.Scan() {
			var item T
			if err := json.Unmarshal(sc.Bytes(), &item); err != nil {
				j.logf("%s: a damaged line is skipped: %v", filepath.Base(name), err)
				continue
			}
			if lines, err = j.codec.encode(lines, &item); err != nil {
				return nil, fmt.Errorf("cannot convert %s: %w", name, err)
			}
		}
		if err := j.writeSegment(next, lines); err != nil {
			return nil, fmt.Errorf("cannot convert %s into %s: %w", name, j.path(next), err)
		}
		if err := os.Remove(name); err != nil {
			return nil, err
		}
		segs = append(segs, next)
		next++
	}
	return segs, syncDir(j.dir)
}

// write returns once items are durable in the journal (nil), or an error:
// ErrOverloaded when too many writes wait, ErrSpoolFull at the cap, or the
// disk's.
func (j *journal[T]) write(ctx context.Context, items []T) error {
	if len(items) == 0 {
		return nil
	}
	buf := j.bufs.get()
	queued := false
	defer func() { // the committer hands back what it took
		if !queued {
			j.bufs.put(buf)
		}
	}()
	for i := range items {
		var err error
		if buf, err = j.codec.encode(buf, &items[i]); err != nil {
			return fmt.Errorf("cannot encode a row for the spool: %w", err)
		}
	}
	if int64(len(buf)) > j.maxBytes {
		return fmt.Errorf("%w: %d bytes in the journal, its cap (--spool-max-bytes) is %d", ErrBatchTooLarge, len(buf), j.maxBytes)
	}
	if j.bytes.Load()+int64(len(buf)) > j.maxBytes {
		return ErrSpoolFull
	}
	req := &journalReq[T]{items: items, lines: buf, size: len(buf), done: make(chan error, 1)}
	if err := trySend(&j.gate, j.in, req); err != nil {
		return err
	}
	queued = true
	return j.wait(ctx, req)
}

// ErrStalled means the journal did not make a write durable within
// WriterOptions.MaxWait: the disk hangs. The write may still become
// durable and be stored; callers answer 503 and the sender retries (a
// retry with the same ids is folded).
var ErrStalled = errors.New("the collector's journal did not make the write durable in time: its disk is stalled")

// wait returns req's outcome, or gives up when ctx is done or after
// MaxWait. The time is told by one clock shared by every write (ticks):
// a timer per request cost 1.6-3.3 µs of the beacon handler's
// 24-27 µs of CPU, and 5 allocations (BenchmarkBeaconHandler, side by
// side, three runs).
func (j *journal[T]) wait(ctx context.Context, req *journalReq[T]) error {
	// Seeing n ticks means at least n-1 whole ticks went by.
	limit := int((j.opt.MaxWait + tickEvery - 1) / tickEvery)
	for n := 0; ; {
		select {
		case err := <-req.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks():
			if n++; n > limit {
				return fmt.Errorf("%w (%v)", ErrStalled, j.opt.MaxWait)
			}
		}
	}
}

// tickEvery is how often ticks' channel closes.
const tickEvery = time.Second

var clock struct {
	once sync.Once
	ch   atomic.Pointer[chan struct{}]
}

// ticks returns a channel closed at the next tick of a clock shared by the
// whole process (started by the first call).
func ticks() <-chan struct{} {
	clock.once.Do(func() {
		ch := make(chan struct{})
		clock.ch.Store(&ch)
		go func() {
			for range time.Tick(tickEvery) {
				next := make(chan struct{})
				close(*clock.ch.Swap(&next))
			}
		}()
	})
	return *clock.ch.Load()
}

// close stops taking writes, makes what was written durable, gives the
// inserter one last try, and stops. What is not in ClickHouse stays on
// disk for the next start.
func (j *journal[T]) close() {
	closeQueue(&j.gate, j.in)
	j.committerWG.Wait()
	close(j.stop)
	j.inserterWG.Wait()
}

// segment is the file the committer appends to.
type segment struct {
	id      uint64
	f       *os.File
	size    int64
	lines   int
	opened  time.Time
	lost    bool // some rows did not make it into the memory queue
	written bool // holds at least one line
}

func (j *journal[T]) commitLoop(next uint64) {
	defer j.committerWG.Done()
	var seg *segment
	tick := time.NewTicker(segmentMaxAge / 4)
	defer tick.Stop()
	var buf []byte
	var batch []*journalReq[T]
	for {
		select {
		case req, ok := <-j.in:
			if !ok {
				j.seal(seg)
				return
			}
			batch, buf = append(batch[:0], req), append(buf[:0], req.lines...)
			j.bufs.put(req.lines)
		more: // group commit: everything already waiting shares the fsync
			for len(buf) < segmentMaxBytes {
				select {
				case r, ok := <-j.in:
					if !ok {
						break more
					}
					batch, buf = append(batch, r), append(buf, r.lines...)
					j.bufs.put(r.lines)
				default:
					break more
				}
			}
			if seg == nil {
				var err error
				if seg, err = j.create(next); err != nil {
					j.fail(batch, err)
					continue
				}
				next++
			}
			if err := j.append(seg, buf); err != nil {
				j.fail(batch, err)
				seg.lost = true // what reached the file goes in from disk
				j.seal(seg)
				seg = nil
				continue
			}
			first := seg.lines
			for _, r := range batch {
				r.done <- nil
				j.enqueue(seg, first, r.items, r.size)
				first += len(r.items)
			}
			seg.lines = first
			clear(batch) // the requests are answered: let them go
			if seg.size >= segmentMaxBytes {
				j.seal(seg)
				seg = nil
			}
		case <-tick.C:
			if seg != nil && time.Since(seg.opened) >= segmentMaxAge {
				j.seal(seg)
				seg = nil
			}
		}
	}
}

func (j *journal[T]) fail(batch []*journalReq[T], err error) {
	j.logf("cannot write %s to the spool in %s: %v", j.what, j.dir, err)
	for _, r := range batch {
		r.done <- fmt.Errorf("cannot make %d %s durable: %w", len(r.items), j.what, err)
	}
}

// create opens a new segment and makes its name durable.
func (j *journal[T]) create(id uint64) (*segment, error) {
	f, err := os.OpenFile(j.path(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		os.Remove(j.path(id))
		return nil, err
	}
	return &segment{id: id, f: f, opened: time.Now()}, nil
}

func (j *journal[T]) append(seg *segment, buf []byte) error {
	n, err := seg.f.Write(buf)
	if err == nil {
		start := time.Now()
		err = seg.f.Sync()
		j.fsyncs.UpdateDuration(start)
	}
	// A failed write (a full disk) is not acknowledged: cut it off, so that
	// a torn line in a segment means damage (see readBack), not ENOSPC.
	if err != nil && n > 0 && seg.f.Truncate(seg.size) == nil {
		n = 0
	}
	seg.size += int64(n)
	j.bytes.Add(int64(n))
	seg.written = seg.written || n > 0
	return err
}

// enqueue hands rows to the inserter, unless the memory queue is full
// (MemBytes, counted in the rows' journal bytes): then they stay only on
// disk and the segment is marked for reading back.
func (j *journal[T]) enqueue(seg *segment, first int, items []T, size int) {
	j.mu.Lock()
	if j.memBytes+int64(size) > j.opt.MemBytes {
		if !seg.lost {
			j.queue = append(j.queue, journalEntry[T]{seg: seg.id, lost: true})
			seg.lost = true
		}
	} else {
		j.queue = append(j.queue, journalEntry[T]{seg: seg.id, first: first, items: items, size: size})
		j.memBytes += int64(size)
	}
	j.mu.Unlock()
	j.signal()
}

// seal closes a segment: no more rows will be appended to it.
func (j *journal[T]) seal(seg *segment) {
	if seg == nil {
		return
	}
	if err := seg.f.Close(); err != nil {
		j.logf("closing spool segment %s: %v", seg.f.Name(), err)
	}
	if !seg.written { // nothing in it
		if os.Remove(seg.f.Name()) == nil {
			return
		}
	}
	j.mu.Lock()
	j.queue = append(j.queue, journalEntry[T]{seg: seg.id, sealed: true, lost: seg.lost})
	j.mu.Unlock()
	j.signal()
}

func (j *journal[T]) signal() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
