package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/meridian-net/meridian/internal/result"
)

// Batch is a run of spooled results, oldest first, as the shipper sends
// them. It stays valid after more appends and after a restart; acking a
// batch that a later ack or the size cap already passed is a no-op.
type Batch struct {
	// Data is the results as NDJSON, one per line, each line ending in
	// '\n': the request body before compression.
	Data []byte
	// IDs are the results' ids in line order; len(IDs) is the count.
	IDs []string

	start, end pos
	corrupt    int           // lines skipped because they are not a result
	damaged    []damagedLine // those lines, as found, for quarantine on Ack
	lines      []lineEnd     // where each result ends, for Head
}

// damagedLine is a line of segment seq that is not a result.
type damagedLine struct {
	seq  uint64
	line []byte
}

// lineEnd is where one result of a batch ends, on disk and in Data.
type lineEnd struct {
	end     pos
	data    int
	corrupt int // damaged lines skipped up to here
}

// Head returns the first n results of b, to ack part of a batch.
func (b Batch) Head(n int) Batch {
	if n >= len(b.IDs) {
		return b
	}
	if n <= 0 {
		return Batch{}
	}
	e := b.lines[n-1]
	return Batch{Data: b.Data[:e.data], IDs: b.IDs[:n], start: b.start, end: e.end, corrupt: e.corrupt,
		damaged: b.damaged[:e.corrupt], lines: b.lines[:n]}
}

// Results decodes b, one result per line and in order, so that Results()[i]
// has id IDs[i]. A line that no longer decodes as a result yields one with
// only its id, which fails Validate: the shipper's check drops and counts it.
func (b Batch) Results() []*result.Result {
	out := make([]*result.Result, len(b.IDs))
	from := 0
	for i, id := range b.IDs {
		to := b.lines[i].data
		r := new(result.Result)
		if err := json.Unmarshal(b.Data[from:to], r); err != nil {
			r = &result.Result{ID: id}
		}
		out[i], from = r, to
	}
	return out
}

// Len returns the number of results in b.
func (b Batch) Len() int { return len(b.IDs) }

// Next returns up to max of the oldest results not yet acked, without
// removing them: until Ack, every call returns the same results (and more,
// if max allows and some were appended since). It also stops after about
// 4 MiB of NDJSON. An empty batch means nothing is pending.
func (s *Spool) Next(max int) (Batch, error) {
	if max <= 0 {
		return Batch{}, fmt.Errorf("cannot read from spool: max must be positive, got %d", max)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Batch{}, ErrClosed
	}
	// Nothing leaves the spool before it is durable.
	if err := s.syncNow(); err != nil {
		s.opts.Logf("spool: %v (its results are shipped anyway: a power cut before the collector has them may take them)", err)
	}
	s.stopSyncTimer()
	i, p := s.readStart()
	b := Batch{start: p}
	for ; i < len(s.segs) && len(b.IDs) < max && len(b.Data) < maxBatchBytes; i++ {
		seg := s.segs[i]
		if seg.seq != p.seq {
			p = pos{seq: seg.seq}
		}
		if p.off < seg.size {
			if err := s.readLines(&b, seg, &p, max); err != nil {
				return Batch{}, err
			}
		}
	}
	b.end = p
	if len(b.IDs) > 0 {
		return b, nil
	}
	if b.corrupt > 0 { // only garbage left: step over it so it cannot wedge the queue
		if err := s.ack(b); err != nil {
			return Batch{}, err
		}
	}
	return Batch{}, nil
}

// readStart returns the index of the first segment holding unacked lines
// and the position of the first of them.
func (s *Spool) readStart() (int, pos) {
	for i, seg := range s.segs {
		if seg.seq == s.cur.seq {
			return i, s.cur
		}
		if seg.seq > s.cur.seq {
			return i, pos{seq: seg.seq}
		}
	}
	return len(s.segs), s.cur
}

// readLines appends complete lines of seg from p to b, advancing p. It reads
// only up to seg.size, the fsynced complete lines, so it never sees a batch
// that is still being written.
func (s *Spool) readLines(b *Batch, seg *segment, p *pos, max int) error {
	f, err := os.Open(s.path(seg.seq))
	if err != nil {
		return fmt.Errorf("cannot read spool segment: %w", err)
	}
	defer f.Close()
	if s.rbuf == nil {
		s.rbuf = make([]byte, 64<<10)
	}
	r := lineReader{r: io.NewSectionReader(f, p.off, seg.size-p.off), buf: s.rbuf}
	for len(b.IDs) < max && len(b.Data) < maxBatchBytes {
		start := len(b.Data)
		var ok bool
		b.Data, ok, err = r.appendLine(b.Data)
		if err != nil {
			return fmt.Errorf("cannot read spool segment %s: %w", s.path(seg.seq), err)
		}
		if !ok {
			return nil
		}
		line := b.Data[start:]
		p.off += int64(len(line))
		p.line++
		if id, ok := lineID(line); ok {
			b.IDs = append(b.IDs, id)
			b.lines = append(b.lines, lineEnd{end: *p, data: len(b.Data), corrupt: b.corrupt})
		} else {
			b.damaged = append(b.damaged, damagedLine{seq: seg.seq, line: bytes.Clone(line)})
			b.Data = b.Data[:start]
			b.corrupt++
		}
	}
	return nil
}

// lineID returns the id of an NDJSON result line, or false when the line
// is not a JSON object with an id (disk damage): such a line would make the
// collector refuse every batch that carries it.
func lineID(line []byte) (string, bool) {
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.ID == "" {
		return "", false
	}
	return v.ID, true
}

// lineReader reads whole lines through a reusable buffer.
type lineReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	eof      bool
}

// appendLine appends the next complete line, '\n' included, to dst. It
// returns false at the end of the data; bytes after the last '\n' are
// never returned.
func (lr *lineReader) appendLine(dst []byte) ([]byte, bool, error) {
	start := len(dst)
	for {
		chunk := lr.buf[lr.pos:lr.end]
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			lr.pos += i + 1
			return append(dst, chunk[:i+1]...), true, nil
		}
		dst = append(dst, chunk...)
		lr.pos = lr.end
		if lr.eof {
			return dst[:start], false, nil
		}
		n, err := lr.r.Read(lr.buf)
		lr.pos, lr.end = 0, n
		if errors.Is(err, io.EOF) {
			lr.eof = true
		} else if err != nil {
			return dst[:start], false, err
		}
	}
}

// Ack marks every result of b, and all before it, as delivered: durably,
// so after a restart Next resumes right after it. Segments wholly acked are
// deleted. Acking an empty or already acked batch does nothing.
func (s *Spool) Ack(b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.ack(b)
}

func (s *Spool) ack(b Batch) error {
	if !s.cur.before(b.end) {
		return nil
	}
	if _, p := s.readStart(); p.before(b.start) {
		return fmt.Errorf("cannot ack spool batch: it starts at %s:%d, past the oldest unacked result at %s:%d (a batch from another spool?)",
			segName(b.start.seq), b.start.off, segName(p.seq), p.off)
	}
	// Damaged lines are kept aside before the cursor passes them: their
	// segment goes once acked, the evidence must not.
	s.quarantineLines(b.damaged)
	if err := s.writeCursor(b.end); err != nil {
		return err
	}
	s.cur = b.end
	if b.corrupt > 0 {
		s.dropped += uint64(b.corrupt)
		droppedTotal.Add(b.corrupt)
		s.opts.Logf("spool: dropped %d damaged lines before %s offset %d: not JSON results (disk damage?); they are kept in %s%s",
			b.corrupt, segName(b.end.seq), b.end.off, segName(b.damaged[0].seq), damagedSuffix)
	}
	s.deleteAcked()
	s.recount()
	s.publish()
	return nil
}
