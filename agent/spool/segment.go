package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	segSuffix  = ".ndjson"
	cursorName = "cursor"
	cursorTmp  = "cursor.tmp"
)

// pos is a place in the spool: byte off of segment seq, which is also the
// end of its first line lines. Positions order by (seq, off).
type pos struct {
	seq  uint64
	off  int64
	line int
}

func (p pos) before(q pos) bool {
	return p.seq < q.seq || p.seq == q.seq && p.off < q.off
}

func segName(seq uint64) string { return fmt.Sprintf("%012d%s", seq, segSuffix) }

func (s *Spool) path(seq uint64) string { return filepath.Join(s.dir, segName(seq)) }

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) < 12 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// load rebuilds the in-memory state from the directory, repairing what a
// crash can leave: a torn last line, a cursor.tmp, segments already acked.
func (s *Spool) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("cannot read spool dir %q: %w", s.dir, err)
	}
	os.Remove(filepath.Join(s.dir, cursorTmp))
	s.cur, err = readCursor(filepath.Join(s.dir, cursorName))
	if err != nil {
		s.opts.Logf("spool: %v; resending everything spooled (the collector drops duplicates)", err)
		s.cur = pos{}
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	s.next = s.cur.seq + 1
	for _, seq := range seqs {
		s.next = max(s.next, seq+1)
		if seq < s.cur.seq { // acked, but a crash came before its deletion
			os.Remove(s.path(seq))
			continue
		}
		seg, err := s.scan(seq)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
	}
	s.deleteAcked()
	s.recount()
	return nil
}

// scan counts the complete lines of a segment, cuts a torn last line and,
// for the cursor's segment, finds how many lines the cursor covers.
func (s *Spool) scan(seq uint64) (*segment, error) {
	name := s.path(seq)
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open spool segment %q: %w", name, err)
	}
	defer f.Close()
	seg := &segment{seq: seq}
	ackOff := int64(-1)
	if seq == s.cur.seq {
		ackOff = s.cur.off
	}
	var ackEnd int64
	var ackLines int
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := f.Read(buf)
		for b := buf[:n]; ; {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				break
			}
			end := off + int64(n-len(b)+i+1)
			seg.size, seg.lines = end, seg.lines+1
			if end <= ackOff {
				ackEnd, ackLines = end, seg.lines
			}
			b = b[i+1:]
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read spool segment %q: %w", name, err)
		}
	}
	if off > seg.size {
		tail := make([]byte, off-seg.size)
		if _, err := f.ReadAt(tail, seg.size); err == nil {
			s.quarantine(seq, [][]byte{tail})
		}
		if err := cutTail(f, seg.size); err != nil {
			return nil, fmt.Errorf("cannot cut the torn last line of spool segment %q: %w", name, err)
		}
		s.opts.Logf("spool: segment %s: cut a torn last line (%d bytes) left by a crash or a cut file, kept in %s%s; the complete lines before it are kept",
			segName(seq), off-seg.size, segName(seq), damagedSuffix)
	}
	if ackOff >= 0 {
		if ackEnd != ackOff {
			s.opts.Logf("spool: cursor offset %d is not a line end of segment %s; resending from offset %d", ackOff, segName(seq), ackEnd)
		}
		s.cur.off, s.cur.line = ackEnd, ackLines
	}
	return seg, nil
}

func cutTail(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// deleteAcked deletes the leading segments the cursor has wholly passed,
// except the last one, which Append may still extend.
func (s *Spool) deleteAcked() {
	for len(s.segs) > 1 {
		seg := s.segs[0]
		if seg.seq > s.cur.seq || seg.seq == s.cur.seq && s.cur.off < seg.size {
			return
		}
		if err := os.Remove(s.path(seg.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.opts.Logf("spool: cannot delete acked segment %s: %v (retried after the next ack)", segName(seg.seq), err)
			return
		}
		s.removeFirst()
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
