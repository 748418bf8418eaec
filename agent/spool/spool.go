// Package spool owns the agent's durable queue of results: append-only,
// fsynced NDJSON segment files under the data dir that survive kill -9 and
// are deleted only after the collector has acknowledged them.
//
// Layout of the spool directory:
//
//	000000000042.ndjson  segment: one result per line, exactly the wire NDJSON
//	000000000043.ndjson  the newest segment is the one being appended to
//	cursor               {"segment":42,"offset":81920,"check":…}: everything before this
//	                     byte of this segment (and every older segment) is
//	                     acked; padded to 96 bytes and overwritten in place
//	LOCK                 flock'd while a Spool is open, so two agents never share a dir
//
// Append writes a batch with one write; its fsync follows within SyncDelay,
// shared by the appends in between, and always before Next hands the batch
// out. Next reads from the cursor without moving it; Ack moves it (one write
// at offset 0, fdatasync) and then deletes segments wholly behind it. A
// crash can leave a torn last line (truncated on Open) or a segment the
// cursor already passed (deleted on Open); it cannot lose an appended result
// or un-ack a batch. A power cut can also take what was appended in the last
// SyncDelay, never anything handed to the shipper.
package spool

import (
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/internal/result"
)

// Package-level metrics, shared by every open Spool (an agent has one; tests
// open many). The gauges are sums: each Spool adds its own changes and takes
// its share back on Close.
var (
	appendedTotal = metrics.NewCounter("meridian_agent_spool_appended_total")
	droppedTotal  = metrics.NewCounter("meridian_agent_spool_dropped_total")
	bytesGauge    = metrics.NewGauge("meridian_agent_spool_bytes", nil)
	resultsGauge  = metrics.NewGauge("meridian_agent_spool_results", nil)
)

// Defaults for Options.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultSegmentBytes = 4 << 20
	DefaultSyncDelay    = time.Second
)

// maxBatchBytes bounds the NDJSON one Next returns whatever max asks for, so
// a long backlog never turns into one huge allocation on a 512 MB host.
const maxBatchBytes = 4 << 20

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("spool is closed")

// Options tune a Spool; the zero value is usable.
type Options struct {
	// MaxBytes caps the spool on disk (default 256 MiB). Past it, the oldest
	// whole segments are dropped, counted and logged. It must be at least
	// twice SegmentBytes.
	MaxBytes int64
	// SegmentBytes rolls to a new segment file once the current one is this
	// big (default 4 MiB, or MaxBytes/8 if that is smaller). It is also the
	// granularity of the cap and of deletion after ack.
	SegmentBytes int64
	// SyncDelay is how long an appended batch may wait for its fsync, so
	// that the appends of one second share one (default 1s; negative:
	// fsync every batch before Append returns). A batch is written before
	// Append returns, so a crash of the agent alone (kill -9) cannot lose
	// it; the delay bounds only what a power cut can take, and Next fsyncs
	// first, so nothing is shipped before it is durable.
	SyncDelay time.Duration
	// Logf reports drops, truncated torn lines and other repairs (default
	// log.Printf). Messages start with "spool: ".
	Logf func(format string, args ...any)
}

// Spool is a durable FIFO of results. It is safe for concurrent use: the
// scheduler appends while the shipper reads and acks.
type Spool struct {
	dir    string
	opts   Options
	unlock func() error

	mu     sync.Mutex
	closed bool
	segs   []*segment // oldest first; the last one is the one appended to
	w      *os.File   // append handle of the last segment, opened lazily
	cf     *os.File   // the cursor file, opened on the first ack
	roll   bool       // the last segment had a write error: start a new one
	next   uint64     // sequence number of the next segment to create
	cur    pos        // the durable ack cursor
	bytes  int64      // bytes of all segment files
	count  int        // results after the cursor
	rbuf   []byte     // read buffer reused by Next

	dirty     bool        // s.w has writes not fsynced yet
	syncTimer *time.Timer // fsyncs SyncDelay after the first of them
	timerSet  bool        // syncTimer is armed
	syncs     int         // fsyncs of appended data (for tests)

	// What this Spool has added to the shared gauges.
	shownBytes, shownCount int64
	dropped                uint64 // results dropped by this Spool (for tests)
}

// segment is what the Spool keeps in memory about one segment file: never
// its contents.
type segment struct {
	seq   uint64
	size  int64 // bytes of complete lines
	lines int
}

// Open opens (creating if needed) the spool in dir, repairs what a crash left
// behind and resumes right after the last ack.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes <= 0 { // a small cap alone gets segments to match
		opts.SegmentBytes = max(min(DefaultSegmentBytes, opts.MaxBytes/8), 1)
	}
	if opts.MaxBytes < 2*opts.SegmentBytes {
		return nil, fmt.Errorf("cannot open spool %q: max bytes %d is less than twice the segment size %d; raise the cap or lower the segment size", dir, opts.MaxBytes, opts.SegmentBytes)
	}
	if opts.SyncDelay == 0 {
		opts.SyncDelay = DefaultSyncDelay
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create spool dir %q: %w", dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opts: opts, unlock: unlock}
	if err := s.load(); err != nil {
		unlock()
		return nil, err
	}
	s.publish()
	return s, nil
}

// Close releases the spool. Everything appended is already on disk.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.syncNow()
	s.stopSyncTimer()
	if s.w != nil {
		if cerr := s.w.Close(); err == nil {
			err = cerr
		}
		s.w = nil
	}
	if s.cf != nil {
		if cerr := s.cf.Close(); err == nil {
			err = cerr
		}
		s.cf = nil
	}
	bytesGauge.Add(-float64(s.shownBytes))
	resultsGauge.Add(-float64(s.shownCount))
	s.shownBytes, s.shownCount = 0, 0
	if uerr := s.unlock(); err == nil {
		err = uerr
	}
	return err
}

// Len returns the number of results not yet acked.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Bytes returns the size of the segment files on disk, acked parts included
// until their segment is deleted.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Append stores batch: when it returns nil, every result is written, is
// fsynced within SyncDelay (and before Next hands it out), and will be
// handed out by Next until acked, across restarts. On error nothing of the
// batch is kept (best effort), so the caller may retry.
// A result that cannot be encoded, or whose line the collector would refuse
// as too long, is dropped, counted and logged rather than blocking the queue.
func (s *Spool) Append(batch []*result.Result) error {
	buf, n := s.encode(batch)
	if n == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.ensureWriter(); err != nil {
		return err
	}
	s.enforceCap(int64(len(buf)))
	last := s.segs[len(s.segs)-1]
	if err := s.write(buf, last); err != nil {
		return err
	}
	last.size += int64(len(buf))
	last.lines += n
	s.bytes += int64(len(buf))
	s.count += n
	appendedTotal.Add(n)
	s.publish()
	return nil
}

// encode renders batch as NDJSON, skipping (and reporting) results the
// collector could never accept, so one bad result cannot wedge the spool.
func (s *Spool) encode(batch []*result.Result) ([]byte, int) {
	var buf []byte
	n := 0
	for _, r := range batch {
		if r == nil {
			continue
		}
		start := len(buf)
		var err error
		buf, err = result.AppendNDJSON(buf, r)
		if err == nil && len(buf)-start > result.MaxLineBytes {
			err = fmt.Errorf("result %s is %d bytes, over the %d-byte line limit", r.ID, len(buf)-start, result.MaxLineBytes)
		}
		if err != nil {
			buf = buf[:start]
			droppedTotal.Inc()
			s.opts.Logf("spool: dropped a result that cannot be spooled: %v", err)
			continue
		}
		n++
	}
	return buf, n
}

// write appends buf to the last segment with one write, and fsyncs it now
// or arms the delayed fsync. On failure it cuts the file back to its last
// good size, so a half-written batch is never followed by the next one, and
// makes the next Append start a new segment: after a failed write or fsync
// the file's state is unknown.
func (s *Spool) write(buf []byte, seg *segment) error {
	_, err := s.w.Write(buf)
	if err == nil && s.opts.SyncDelay < 0 {
		s.dirty = true
		err = s.syncNow()
	}
	if err == nil {
		s.syncSoon()
		return nil
	}
	s.roll = true
	if terr := s.w.Truncate(seg.size); terr != nil {
		s.opts.Logf("spool: cannot cut segment %s back after a failed write: %v (the torn tail is removed on the next start)", segName(seg.seq), terr)
	}
	return fmt.Errorf("cannot append to spool segment %s: %w", s.path(seg.seq), err)
}

// ensureWriter makes sure s.w appends to a segment with room left, rolling to
// a new one when the last is full, broken or missing.
func (s *Spool) ensureWriter() error {
	if n := len(s.segs); n > 0 && !s.roll && s.segs[n-1].size < s.opts.SegmentBytes {
		if s.w != nil {
			return nil
		}
		// Resume appending to the newest segment found by Open.
		f, err := os.OpenFile(s.path(s.segs[n-1].seq), os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			s.w = f
			return nil
		}
		s.opts.Logf("spool: cannot reopen segment %s for appending, starting a new one: %v", segName(s.segs[n-1].seq), err)
	}
	return s.rollSegment()
}

// rollSegment closes the current segment and starts the next one. The new
// file's directory entry is fsynced, so a batch fsynced into it cannot
// vanish with its name after a power cut.
func (s *Spool) rollSegment() error {
	if err := s.syncNow(); err != nil {
		s.opts.Logf("spool: %v (its results stay queued; a power cut may take them)", err)
	}
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	seq := s.next
	f, err := os.OpenFile(s.path(seq), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("cannot create spool segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(s.path(seq))
		return fmt.Errorf("cannot create spool segment %s: %w", s.path(seq), err)
	}
	s.next++
	s.roll = false
	s.w = f
	s.segs = append(s.segs, &segment{seq: seq})
	s.deleteAcked()
	return nil
}

// enforceCap drops the oldest whole segments, never the last one, until
// incoming more bytes fit under MaxBytes.
func (s *Spool) enforceCap(incoming int64) {
	var results, segs int
	var bytes int64
	for s.bytes+incoming > s.opts.MaxBytes && len(s.segs) > 1 {
		seg := s.segs[0]
		if err := os.Remove(s.path(seg.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.opts.Logf("spool: cannot drop segment %s to stay under the cap: %v", segName(seg.seq), err)
			break
		}
		results += s.pendingIn(seg)
		segs++
		bytes += seg.size
		s.removeFirst()
	}
	if segs == 0 {
		return
	}
	s.dropped += uint64(results)
	droppedTotal.Add(results)
	s.recount()
	s.opts.Logf("spool: dropped %d unsent results (%d oldest segments, %d bytes): the spool is over its %d-byte cap because the collector has not acked them; check the link to the collector or raise the cap",
		results, segs, bytes, s.opts.MaxBytes)
}

// removeFirst forgets segs[0], whose file is already gone.
func (s *Spool) removeFirst() {
	s.bytes -= s.segs[0].size
	s.segs[0] = nil
	s.segs = s.segs[1:]
}

// pendingIn returns how many of seg's lines lie after the cursor.
func (s *Spool) pendingIn(seg *segment) int {
	switch {
	case seg.seq < s.cur.seq:
		return 0
	case seg.seq == s.cur.seq:
		return max(seg.lines-s.cur.line, 0)
	}
	return seg.lines
}

// recount recomputes the pending count from the segment list.
func (s *Spool) recount() {
	s.count = 0
	for _, seg := range s.segs {
		s.count += s.pendingIn(seg)
	}
}

// publish moves the shared gauges by what changed in this Spool.
func (s *Spool) publish() {
	bytesGauge.Add(float64(s.bytes - s.shownBytes))
	resultsGauge.Add(float64(int64(s.count) - s.shownCount))
	s.shownBytes, s.shownCount = s.bytes, int64(s.count)
}
