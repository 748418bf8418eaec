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
	bytes  atomic.Int64 // segment files on disk, the current one included
	fsyncs *metrics.Histogram

	mu      sync.Mutex // guards queue and memRows
	queue   []journalEntry[T]
	memRows int
	wake    chan struct{} // 1-buffered: the queue has news

	stop        chan struct{} // closed by close: the inserter finishes
	committerWG sync.WaitGroup
	inserterWG  sync.WaitGroup
}

type journalReq[T any] struct {
	items []T
	lines []byte // items encoded, one JSON line each
	done  chan error
}

// journalEntry tells the inserter about a segment: rows appended to it
// (lines first..first+len(items)), that it holds rows not in memory
// (lost), or that it is complete (sealed).
type journalEntry[T any] struct {
	seg    uint64
	first  int
	items  []T
	lost   bool
	sealed bool
}

const (
	segmentMaxBytes = 16 << 20
	segmentMaxAge   = time.Second
)

// codec turns a row into one journal line and back.
type codec[T any] struct {
	encode func(dst []byte, item *T) ([]byte, error) // appends a line, '\n' included; may drop what the line now holds
	decode func(line []byte) (T, error)
	// replay marks an item read back from the journal as possibly stored
	// already (Row.Replay): an insert of it may have landed before a
	// failure or a restart. Rows that only overflowed memory are marked
	// too; that costs queries a little, never a count.
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
		in: make(chan *journalReq[T], opt.Queue), wake: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	if j.maxBytes <= 0 {
		j.maxBytes = 1 << 30
	}
	if j.opt.DrainEvery <= 0 {
		j.opt.DrainEvery = 2 * time.Second
	}
	if j.opt.MemRows <= 0 {
		j.opt.MemRows = 4 * opt.MaxRows
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
		j.queue = append(j.queue, journalEntry[T]{seg: s, lost: true, sealed: true})
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
		j.queue = append(j.queue, journalEntry[T]{seg: s, lost: true, sealed: true})
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
	var buf []byte
	for i := range items {
		var err error
		if buf, err = j.codec.encode(buf, &items[i]); err != nil {
			return fmt.Errorf("cannot encode a row for the spool: %w", err)
		}
	}
	if j.bytes.Load()+int64(len(buf)) > j.maxBytes {
		return ErrSpoolFull
	}
	req := &journalReq[T]{items: items, lines: buf, done: make(chan error, 1)}
	if err := trySend(&j.gate, j.in, req); err != nil {
		return err
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
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
		more: // group commit: everything already waiting shares the fsync
			for len(buf) < segmentMaxBytes {
				select {
				case r, ok := <-j.in:
					if !ok {
						break more
					}
					batch, buf = append(batch, r), append(buf, r.lines...)
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
				j.enqueue(seg, first, r.items)
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

// enqueue hands rows to the inserter, unless the memory queue is full:
// then they stay only on disk and the segment is marked for reading back.
func (j *journal[T]) enqueue(seg *segment, first int, items []T) {
	j.mu.Lock()
	if j.memRows+len(items) > j.opt.MemRows {
		if !seg.lost {
			j.queue = append(j.queue, journalEntry[T]{seg: seg.id, lost: true})
			seg.lost = true
		}
	} else {
		j.queue = append(j.queue, journalEntry[T]{seg: seg.id, first: first, items: items})
		j.memRows += len(items)
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

// span is a run of lines of a segment already in ClickHouse.
type span struct{ first, n int }

// segState is what the inserter knows of a segment.
type segState struct {
	pending int    // rows taken from memory, not yet inserted
	done    []span // rows inserted from memory
	lost    bool   // rows not in memory: read the file back
	sealed  bool   // no more rows will come

	// While it is read back: the file, where the next run starts, and how
	// many rows went in so far.
	data      []byte
	off, line int
	sent      int

	// Damage: lines that do not decode, a torn last line, or a file that
	// cannot be read. Such a segment is moved aside (quarantine) once its
	// readable rows are in, never read again nor deleted.
	damaged    int
	readFails  int
	quarantine bool
}

// maxReadFails is how many times in a row a segment may fail to be read
// before it is moved aside, so that the segments after it go in.
const maxReadFails = 3

// batchPart ties rows of a batch to the lines they came from.
type batchPart struct {
	seg      uint64
	first, n int
}

// insertLoop sends rows from memory to ClickHouse in batches of up to
// MaxRows, at most MaxDelay after the first; deletes segments whose rows are
// all in; and reads back segments whose rows are not all in memory. After
// a failed insert it stops using memory (rows stay on disk) until a
// segment has been read back and inserted, trying every DrainEvery.
func (j *journal[T]) insertLoop() {
	defer j.inserterWG.Done()
	var (
		segs      = map[uint64]*segState{}
		backlog   []journalEntry[T]
		batch     []T
		parts     []batchPart
		started   time.Time // when the batch's first row came
		healthy   = true
		nextDrain time.Time
		stopping  bool
		timer     = time.NewTimer(time.Hour)
	)
	state := func(id uint64) *segState {
		s := segs[id]
		if s == nil {
			s = &segState{}
			segs[id] = s
		}
		return s
	}
	flush := func() {
		if len(batch) == 0 {
			return
		}
		err := j.send(batch)
		for _, p := range parts {
			s := segs[p.seg]
			s.pending -= p.n
			if err == nil {
				s.done = append(s.done, span{p.first, p.n})
			} else {
				s.lost = true
			}
		}
		j.release(len(batch))
		if err != nil && refusesData(err) { // no back-off: read back at once and split
			j.logf("ClickHouse refused %d %s for their data (%v): they are read back from the spool to find the rows it refuses", len(batch), j.what, err)
		} else if err != nil {
			j.logf("ClickHouse insert failed (%v): %d %s stay in the spool until it takes inserts again", err, len(batch), j.what)
			metrics.GetOrCreateCounter(`meridian_store_spooled_total{what="` + j.what + `"}`).Add(len(batch))
			healthy, nextDrain = false, time.Now().Add(j.opt.DrainEvery)
		}
		clear(batch)
		batch, parts = batch[:0], parts[:0]
	}
	for {
		j.mu.Lock()
		backlog = append(backlog, j.queue...)
		clear(j.queue)
		j.queue = j.queue[:0]
		j.mu.Unlock()

		// Take rows until the batch is full; the rest waits in backlog.
		n := 0
		for ; n < len(backlog) && len(batch) < j.opt.MaxRows; n++ {
			e := backlog[n]
			s := state(e.seg)
			s.lost = s.lost || e.lost
			s.sealed = s.sealed || e.sealed
			if len(e.items) == 0 {
				continue
			}
			if !healthy {
				s.lost = true
				j.release(len(e.items))
				continue
			}
			if len(batch) == 0 {
				started = time.Now()
			}
			batch = append(batch, e.items...)
			parts = append(parts, batchPart{e.seg, e.first, len(e.items)})
			s.pending += len(e.items)
		}
		clear(backlog[:n])
		backlog = backlog[n:]

		if len(batch) >= j.opt.MaxRows || (len(batch) > 0 && (stopping || time.Since(started) >= j.opt.MaxDelay)) {
			flush()
		}
		j.finish(segs)
		if (healthy || !time.Now().Before(nextDrain)) && len(batch) == 0 {
			if id, s, ok := nextLost(segs); ok {
				if err := j.readBack(id, s); err != nil {
					j.logf("%s spool: %v", j.what, err)
					healthy, nextDrain = false, time.Now().Add(j.opt.DrainEvery)
				} else {
					healthy = true
				}
				j.finish(segs)
				continue
			}
		}
		if stopping && len(backlog) == 0 && len(batch) == 0 {
			return
		}

		// Sleep until news, the batch's deadline or the next read-back.
		wait := time.Hour
		if len(batch) > 0 {
			wait = min(wait, j.opt.MaxDelay-time.Since(started))
		}
		if len(backlog) > 0 {
			wait = 0
		}
		if !healthy {
			if _, _, ok := nextLost(segs); ok {
				wait = min(wait, time.Until(nextDrain))
			}
		}
		if stopping {
			continue
		}
		timer.Reset(max(wait, 0))
		select {
		case <-j.wake:
		case <-timer.C:
		case <-j.stop:
			stopping = true
		}
		timer.Stop()
	}
}

func (j *journal[T]) release(n int) {
	j.mu.Lock()
	j.memRows -= n
	j.mu.Unlock()
}

// finish deletes the files of sealed segments whose rows are all in
// ClickHouse.
func (j *journal[T]) finish(segs map[uint64]*segState) {
	for id, s := range segs {
		if s.sealed && s.pending == 0 && !s.lost {
			if s.quarantine {
				j.quarantine(id, s.damaged)
			} else {
				j.remove(id)
			}
			delete(segs, id)
		}
	}
}

func (j *journal[T]) remove(id uint64) {
	name := j.path(id)
	fi, err := os.Stat(name)
	if err != nil {
		return
	}
	if err := os.Remove(name); err != nil {
		j.logf("cannot remove spool segment: %v", err)
		return
	}
	j.bytes.Add(-fi.Size())
}

// quarantine moves a damaged segment aside, to seg-….ndjson.damaged, once
// its readable rows are in ClickHouse: it is not read again (a damaged
// segment must not be retried forever, nor hold up the ones after it), and
// its bytes stay as found for whoever looks into the damage. Counted in
// meridian_store_spool_quarantined_total; a file that cannot be moved
// stays and is read again at the next start.
func (j *journal[T]) quarantine(id uint64, damaged int) {
	name := j.path(id)
	fi, err := os.Stat(name)
	if err != nil {
		return
	}
	if err := os.Rename(name, name+".damaged"); err != nil {
		j.logf("cannot move damaged spool segment %s aside: %v (it is read again at the next start)", name, err)
		return
	}
	syncDir(j.dir)
	j.bytes.Add(-fi.Size())
	metrics.GetOrCreateCounter(`meridian_store_spool_quarantined_total{what="` + j.what + `"}`).Inc()
	j.logf("%s: %d damaged lines; its readable rows are in ClickHouse, the file is moved aside to %s", filepath.Base(name), damaged, filepath.Base(name)+".damaged")
}

// nextLost is the oldest complete segment that must be read back.
func nextLost(segs map[uint64]*segState) (uint64, *segState, bool) {
	var best uint64
	var found *segState
	for id, s := range segs {
		if s.lost && s.sealed && s.pending == 0 && (found == nil || id < best) {
			best, found = id, s
		}
	}
	return best, found, found != nil
}

// readBack inserts the next run of up to MaxRows rows of a segment that
// are not in ClickHouse yet (one run per call, so rows waiting in memory
// go in between), and marks the segment done after its last line. A torn
// last line (a crash mid-write, never acknowledged, or a truncated file)
// is skipped; so is a damaged line elsewhere, with a log line; damage
// marks the segment for quarantine.
func (j *journal[T]) readBack(id uint64, s *segState) error {
	name := filepath.Base(j.path(id))
	if s.data == nil {
		data, err := os.ReadFile(j.path(id))
		if errors.Is(err, os.ErrNotExist) {
			s.lost = false
			return nil
		}
		if err != nil {
			if s.readFails++; s.readFails < maxReadFails {
				return err
			}
			j.logf("%s: cannot read it %d times (%v): it is moved aside so that the segments after it go in", name, s.readFails, err)
			damagedLines(j.what).Inc()
			s.lost, s.quarantine, s.damaged = false, true, 1
			return nil
		}
		s.readFails = 0
		s.data = data
		sort.Slice(s.done, func(a, b int) bool { return s.done[a].first < s.done[b].first })
	}
	var items []T
	var lines [][]byte // items' lines, for dead letters
	off, line := s.off, s.line
	for len(items) < j.opt.MaxRows {
		adv, tok, _ := scanFullLines(s.data[off:], true)
		if adv == 0 || tok == nil {
			break // end of the segment (or its torn tail)
		}
		if s.isDone(line) {
			if len(items) > 0 {
				break // a run ends
			}
			off, line = off+adv, line+1
			continue
		}
		item, err := j.codec.decode(tok)
		if err != nil {
			if len(items) > 0 {
				break
			}
			j.logf("%s: line %d is damaged, skipped (the segment is moved aside once its readable rows are in): %v", name, line+1, err)
			damagedLines(j.what).Inc()
			s.damaged++
			off, line = off+adv, line+1
			s.off, s.line = off, line // nothing before it waits: never count it twice
			continue
		}
		if j.codec.replay != nil {
			j.codec.replay(&item)
		}
		items, lines = append(items, item), append(lines, tok)
		off, line = off+adv, line+1
	}
	if len(items) > 0 {
		n, err := j.insertRun(name, s, line-len(items), items, lines)
		s.sent += n
		metrics.GetOrCreateCounter(`meridian_store_spool_drained_total{what="` + j.what + `"}`).Add(n)
		if err != nil { // the cursor stays; what went in is marked done
			return fmt.Errorf("cannot insert %d %s read back from %s yet: %w", len(items)-n, j.what, name, err)
		}
	}
	s.off, s.line = off, line
	if off >= len(s.data) || len(items) == 0 && !s.isDone(line) {
		if torn := len(s.data) - off; torn > 0 && id+1 == j.crashSeg {
			j.logf("%s: its last line is torn (%d bytes, a crash mid-write: never acknowledged), skipped", name, torn)
		} else if torn > 0 {
			j.logf("%s: its last line is torn (%d bytes; not a crash's: the file was cut), skipped", name, torn)
			damagedLines(j.what).Inc()
			s.damaged++
		}
		s.quarantine = s.damaged > 0
		if s.sent > 0 {
			j.logf("inserted %d %s from the spool (%s)", s.sent, j.what, name)
		}
		s.lost, s.data, s.off, s.line, s.sent = false, nil, 0, 0, 0
	}
	return nil
}

// damagedLines counts the journal lines of a kind found damaged on disk.
func damagedLines(what string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`meridian_store_spool_damaged_total{what="` + what + `"}`)
}

// isDone tells whether line of the segment is in ClickHouse already (done
// is sorted).
func (s *segState) isDone(line int) bool {
	i := sort.Search(len(s.done), func(i int) bool { return s.done[i].first+s.done[i].n > line })
	return i < len(s.done) && s.done[i].first <= line
}

// scanFullLines splits newline-terminated lines and drops an unterminated
// tail: a write torn by a crash.
func scanFullLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF {
		return len(data), nil, nil
	}
	return 0, nil, nil
}
