package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// span is a run of lines of a segment already in ClickHouse.
type span struct{ first, n int }

// segState is what the inserter knows of a segment.
type segState struct {
	pending int    // rows taken from memory, not yet inserted
	done    []span // rows inserted from memory
	lost    bool   // rows not in memory: read the file back
	sealed  bool   // no more rows will come
	tried   []span // rows of inserts that failed: they may have landed
	earlier bool   // left by an earlier run: any row may have landed

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

// batchPart ties rows of a batch to the lines they came from (size bytes
// of them).
type batchPart struct {
	seg            uint64
	first, n, size int
}

// insertLoop sends rows from memory to ClickHouse in batches of up to
// MaxRows, at most MaxDelay after the first; deletes segments whose rows are
// all in; and reads back segments whose rows are not all in memory. After
// a failed insert it stops using memory (rows stay on disk) until a
// segment has been read back and inserted, trying every DrainEvery.
func (j *journal[T]) insertLoop() {
	defer j.inserterWG.Done()
	in := &inserter[T]{j: j, segs: map[uint64]*segState{}, healthy: true}
	timer := time.NewTimer(time.Hour)
	stopping := false
	for {
		in.take()
		if len(in.batch) >= j.opt.MaxRows || (len(in.batch) > 0 && (stopping || time.Since(in.started) >= j.opt.MaxDelay)) {
			in.flush()
		}
		j.finish(in.segs)
		if in.drain() {
			continue
		}
		if stopping && len(in.backlog) == 0 && len(in.batch) == 0 {
			return
		}
		if stopping {
			continue
		}
		timer.Reset(max(in.wait(), 0))
		select {
		case <-j.wake:
		case <-timer.C:
		case <-j.stop:
			stopping = true
		}
		timer.Stop()
	}
}

// inserter is insertLoop's state: what it knows of each segment, rows
// waiting for a batch, the batch, and whether ClickHouse takes inserts.
type inserter[T any] struct {
	j          *journal[T]
	segs       map[uint64]*segState
	backlog    []journalEntry[T]
	batch      []T
	parts      []batchPart
	started    time.Time // when the batch's first row came
	healthy    bool
	nextDrain  time.Time
	split      bool   // ClickHouse refused a read-back insert for its data: read run by run
	splitUntil uint64 // up to this segment, the refused insert's last
	readBuf    []T    // rows read back, kept from one insert to the next
}

func (in *inserter[T]) state(id uint64) *segState {
	s := in.segs[id]
	if s == nil {
		s = &segState{}
		in.segs[id] = s
	}
	return s
}

// take moves what the committer queued into the backlog, and rows from
// the backlog into the batch until it is full; the rest waits.
func (in *inserter[T]) take() {
	j := in.j
	j.mu.Lock()
	in.backlog = append(in.backlog, j.queue...)
	clear(j.queue)
	j.queue = j.queue[:0]
	j.mu.Unlock()

	n := 0
	for ; n < len(in.backlog) && len(in.batch) < j.opt.MaxRows; n++ {
		e := in.backlog[n]
		s := in.state(e.seg)
		s.lost = s.lost || e.lost
		s.sealed = s.sealed || e.sealed
		s.earlier = s.earlier || e.earlier
		if len(e.items) == 0 {
			continue
		}
		if !in.healthy {
			s.lost = true
			j.release(e.size)
			continue
		}
		if len(in.batch) == 0 {
			in.started = time.Now()
		}
		in.batch = append(in.batch, e.items...)
		in.parts = append(in.parts, batchPart{e.seg, e.first, len(e.items), e.size})
		s.pending += len(e.items)
	}
	clear(in.backlog[:n])
	in.backlog = in.backlog[n:]
}

// flush inserts the batch; its rows are done in their segments, or left
// to be read back from them.
func (in *inserter[T]) flush() {
	j := in.j
	if len(in.batch) == 0 {
		return
	}
	err := j.send(in.batch)
	size := 0
	for _, p := range in.parts {
		s := in.segs[p.seg]
		s.pending -= p.n
		size += p.size
		if err == nil {
			s.done = append(s.done, span{p.first, p.n})
		} else {
			s.lost = true
			s.tried = append(s.tried, span{p.first, p.n})
		}
	}
	j.release(size)
	if err != nil && refusesData(err) { // no back-off: read back at once and split
		j.logf("ClickHouse refused %d %s for their data (%v): they are read back from the spool to find the rows it refuses", len(in.batch), j.what, err)
	} else if err != nil {
		j.logf("ClickHouse insert failed (%v): %d %s stay in the spool until it takes inserts again", err, len(in.batch), j.what)
		metrics.GetOrCreateCounter(`meridian_store_spooled_total{what="` + j.what + `"}`).Add(len(in.batch))
		in.healthy, in.nextDrain = false, time.Now().Add(j.opt.DrainEvery)
	}
	clear(in.batch)
	in.batch, in.parts = in.batch[:0], in.parts[:0]
}

// drain reads back one run of the oldest segment that needs it, when
// ClickHouse is healthy or the back-off is over and no batch is pending.
// It says whether it did.
func (in *inserter[T]) drain() bool {
	j := in.j
	if (!in.healthy && time.Now().Before(in.nextDrain)) || len(in.batch) > 0 {
		return false
	}
	if _, _, ok := nextLost(in.segs); !ok {
		return false
	}
	if err := in.readBack(); err != nil {
		j.logf("%s spool: %v", j.what, err)
		in.healthy, in.nextDrain = false, time.Now().Add(j.opt.DrainEvery)
	} else {
		in.healthy = true
	}
	j.finish(in.segs)
	return true
}

// wait is how long to sleep until the batch's deadline, the backlog or
// the next read-back, unless news comes first.
func (in *inserter[T]) wait() time.Duration {
	wait := time.Hour
	if len(in.batch) > 0 {
		wait = min(wait, in.j.opt.MaxDelay-time.Since(in.started))
	}
	if len(in.backlog) > 0 {
		wait = 0
	}
	if !in.healthy {
		if _, _, ok := nextLost(in.segs); ok {
			wait = min(wait, time.Until(in.nextDrain))
		}
	}
	return wait
}

// release gives back the memory queue's room of rows inserted or left to
// the disk: size journal bytes.
func (j *journal[T]) release(size int) {
	j.mu.Lock()
	j.memBytes -= int64(size)
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

// readBack inserts up to MaxRows rows that are not in ClickHouse yet, read
// back from the oldest segments that need it. It passes over rows that
// went in from memory and goes on into the next such segment, so inserts
// are full: ClickHouse's CPU per row falls with an insert's size, and under
// saturation most rows come this way (make bench). Rows waiting in memory
// go in between two calls. One segment's file is held at a time: a decoded
// row owns its strings.
//
// A segment whose last line was read and inserted is done. A torn last
// line (a crash mid-write, never acknowledged, or a truncated file) is
// skipped; so is a damaged line elsewhere, with a log line; damage marks
// the segment for quarantine.
//
// After ClickHouse refused such an insert for its data, the segments it
// read are read again one run at a time, and a run refused again is
// bisected (readRun, insertRun).
func (in *inserter[T]) readBack() error {
	if in.split {
		if id, s, _ := nextLost(in.segs); id <= in.splitUntil {
			return in.j.readRun(id, s)
		}
		in.split = false
	}
	j := in.j
	items := in.readBuf[:0]
	defer func() {
		clear(items)
		in.readBuf = items[:0]
		if cap(items) > maxKeptRows {
			in.readBuf = nil
		}
	}()
	var (
		read    []readCursor // where each segment's next run starts once the rows are in
		tried   []readSpan
		loadErr error
	)
	for _, id := range lostSegments(in.segs) {
		if len(items) >= j.opt.MaxRows {
			break
		}
		s := in.segs[id]
		if s.data == nil {
			ok, err := j.load(id, s)
			if err != nil {
				loadErr = err // after the rows read so far: back off
				break
			}
			if !ok {
				continue
			}
		}
		c := readCursor{id: id, s: s, off: s.off, line: s.line}
		j.scan(&c, false, func() bool { return len(items) < j.opt.MaxRows }, func(line int, item T, _ []byte) {
			items = append(items, item)
			if n := len(tried); n > 0 && tried[n-1].s == s && tried[n-1].first+tried[n-1].n == line {
				tried[n-1].n++
			} else {
				tried = append(tried, readSpan{s, span{line, 1}})
			}
		})
		if c.end {
			s.data = nil // read again from the file if the insert fails
		}
		read = append(read, c)
	}
	if err := in.insertRead(items, read, tried); err != nil {
		return err
	}
	return loadErr
}

// insertRead inserts the rows readBack read (tried: their runs of lines)
// and moves the segments' cursors past them (read), or leaves every cursor
// where it was when the insert fails.
func (in *inserter[T]) insertRead(items []T, read []readCursor, tried []readSpan) error {
	j := in.j
	if len(items) > 0 {
		err := j.send(items)
		if err != nil {
			for _, t := range tried {
				t.s.tried = append(t.s.tried, t.span)
			}
		}
		if err != nil && refusesData(err) {
			j.logf("ClickHouse refused %d %s read back from %s for their data (%v): they are read again run by run to find the rows it refuses", len(items), j.what, segNames(j, read), err)
			in.split, in.splitUntil = true, read[len(read)-1].id
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot insert %d %s read back from %s yet: %w", len(items), j.what, segNames(j, read), err)
		}
		metrics.GetOrCreateCounter(`meridian_store_spool_drained_total{what="` + j.what + `"}`).Add(len(items))
		for _, t := range tried {
			t.s.sent += t.n
		}
	}
	for _, c := range read {
		c.s.off, c.s.line = c.off, c.line
		if c.end {
			j.readDone(c.id, c.s, c.torn)
		}
	}
	return nil
}

// readCursor is how far readBack read a segment.
type readCursor struct {
	id        uint64
	s         *segState
	off, line int
	end       bool // its last line was read
	torn      int  // bytes of a torn last line
}

// readSpan is a run of lines of a segment in a read-back insert.
type readSpan struct {
	s *segState
	span
}

// lostSegments lists the complete segments that must be read back, oldest
// first.
func lostSegments(segs map[uint64]*segState) []uint64 {
	var ids []uint64
	for id, s := range segs {
		if s.lost && s.sealed && s.pending == 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// segNames names the segments of a read-back insert for a log line.
func segNames[T any](j *journal[T], read []readCursor) string {
	first := filepath.Base(j.path(read[0].id))
	if len(read) == 1 {
		return first
	}
	return fmt.Sprintf("%s to %s (%d segments)", first, filepath.Base(j.path(read[len(read)-1].id)), len(read))
}

// readDone ends reading a segment back: its rows are all in (or
// dead-lettered); a torn last line of torn bytes was skipped.
func (j *journal[T]) readDone(id uint64, s *segState, torn int) {
	name := filepath.Base(j.path(id))
	if torn > 0 && id+1 == j.crashSeg {
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

// scan reads c's segment from c on while more says so, handing add each
// row not in ClickHouse yet with its line number and text. It passes over
// lines already in, and damaged lines (logged, counted and marked done, so
// never counted twice); with oneRun it stops at either once it has a row.
// c.end tells that it read the segment's last line.
func (j *journal[T]) scan(c *readCursor, oneRun bool, more func() bool, add func(line int, item T, text []byte)) {
	s, rows := c.s, 0
	for more() {
		adv, tok, _ := scanFullLines(s.data[c.off:], true)
		if adv == 0 || tok == nil {
			c.end, c.torn = true, adv
			return
		}
		if s.isDone(c.line) {
			if oneRun && rows > 0 {
				return // a run ends
			}
			c.off, c.line = c.off+adv, c.line+1
			continue
		}
		item, err := j.codec.decode(tok)
		switch {
		case err != nil && oneRun && rows > 0:
			return
		case err != nil:
			j.logf("%s: line %d is damaged, skipped (the segment is moved aside once its readable rows are in): %v", filepath.Base(j.path(c.id)), c.line+1, err)
			damagedLines(j.what).Inc()
			s.damaged++
			s.markDone(c.line, 1)
		default:
			if j.codec.replay != nil && s.maybeStored(c.line) {
				j.codec.replay(&item)
			}
			add(c.line, item, tok)
			rows++
		}
		c.off, c.line = c.off+adv, c.line+1
	}
}

// readRun inserts the next run of rows of a segment that are not in
// ClickHouse yet, as readBack did before it gathered runs: rows with their
// lines as read, so that insertRun can bisect them and dead-letter the
// rows ClickHouse refuses on their own.
func (j *journal[T]) readRun(id uint64, s *segState) error {
	name := filepath.Base(j.path(id))
	if s.data == nil {
		if ok, err := j.load(id, s); !ok {
			return err
		}
	}
	var items []T
	var lines [][]byte // items' lines, for dead letters
	c := readCursor{id: id, s: s, off: s.off, line: s.line}
	j.scan(&c, true, func() bool { return len(items) < j.opt.MaxRows }, func(_ int, item T, text []byte) {
		items, lines = append(items, item), append(lines, text)
	})
	if len(items) > 0 {
		first := c.line - len(items)
		n, err := j.insertRun(name, s, first, items, lines)
		s.sent += n
		metrics.GetOrCreateCounter(`meridian_store_spool_drained_total{what="` + j.what + `"}`).Add(n)
		if err != nil { // the cursor stays; what went in is marked done
			s.tried = append(s.tried, span{first, len(items)})
			return fmt.Errorf("cannot insert %d %s read back from %s yet: %w", len(items)-n, j.what, name, err)
		}
	}
	s.off, s.line = c.off, c.line
	if c.end {
		j.readDone(id, s, c.torn)
	}
	return nil
}

// load reads a segment for readBack; false when there is nothing to read
// (gone, or moved aside after failing to read) or it cannot be read yet.
func (j *journal[T]) load(id uint64, s *segState) (bool, error) {
	data, err := os.ReadFile(j.path(id))
	if errors.Is(err, os.ErrNotExist) {
		s.lost = false
		return false, nil
	}
	if err != nil {
		if s.readFails++; s.readFails < maxReadFails {
			return false, err
		}
		j.logf("%s: cannot read it %d times (%v): it is moved aside so that the segments after it go in", filepath.Base(j.path(id)), s.readFails, err)
		damagedLines(j.what).Inc()
		s.lost, s.quarantine, s.damaged = false, true, 1
		return false, nil
	}
	s.readFails = 0
	s.data = data
	sort.Slice(s.done, func(a, b int) bool { return s.done[a].first < s.done[b].first })
	return true, nil
}

// damagedLines counts the journal lines of a kind found damaged on disk.
func damagedLines(what string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`meridian_store_spool_damaged_total{what="` + what + `"}`)
}

// maybeStored tells whether line of the segment may be in ClickHouse
// already, though not known to be: its segment was left by an earlier run,
// or an insert of it failed (its outcome unknown). A row that only
// overflowed memory was never sent.
func (s *segState) maybeStored(line int) bool {
	if s.earlier {
		return true
	}
	for _, t := range s.tried {
		if t.first <= line && line < t.first+t.n {
			return true
		}
	}
	return false
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
