package spool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// cursorFile is the on-disk form of the ack cursor. Check is a CRC-32 of
// the position, so a record torn into a mix of old and new digits that
// still decodes is caught (cursors written before it have none).
type cursorFile struct {
	Segment uint64  `json:"segment"`
	Offset  int64   `json:"offset"`
	Check   *uint32 `json:"check,omitempty"`
}

// cursorBytes is the fixed size of the cursor file: the JSON, padded with
// spaces, and a newline. The longest JSON is 80 bytes.
const cursorBytes = 96

// cursorCheck is the CRC-32 of a cursor position.
func cursorCheck(seg uint64, off int64) uint32 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(off))
	return crc32.ChecksumIEEE(b[:])
}

func readCursor(name string) (pos, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return pos{}, nil
	}
	if err != nil {
		return pos{}, fmt.Errorf("cannot read spool cursor %q: %w", name, err)
	}
	var c cursorFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Offset < 0 {
		return pos{}, fmt.Errorf("cannot decode spool cursor %q (%q)", name, b)
	}
	if c.Check != nil && *c.Check != cursorCheck(c.Segment, c.Offset) {
		return pos{}, fmt.Errorf("spool cursor %q fails its check (%q): damaged", name, b)
	}
	return pos{seq: c.Segment, off: c.Offset}, nil
}

// writeCursor overwrites the cursor file in place and durably: after it
// returns, a crash or power cut cannot bring back the old position.
//
// It used to write cursor.tmp, fsync it, rename it over cursor and fsync the
// directory: two fsyncs, a create and a rename on every ack, about half of
// what shipping cost the agent. One write of 96 bytes at offset 0 lies in
// one disk sector, which a power cut leaves old or new, never torn (the
// assumption PostgreSQL makes of its 512-byte pg_control, which carries a
// CRC as this record does); and fdatasync skips the inode once the file has
// its size. Were it ever torn, the cursor would not decode or fail its
// check, and Open would resend everything (the collector drops
// duplicates), never skip a result.
func (s *Spool) writeCursor(p pos) error {
	if err := s.openCursor(); err != nil {
		return fmt.Errorf("cannot write spool cursor in %q: %w", s.dir, err)
	}
	check := cursorCheck(p.seq, p.off)
	b, _ := json.Marshal(cursorFile{Segment: p.seq, Offset: p.off, Check: &check})
	rec := bytes.Repeat([]byte{' '}, cursorBytes)
	copy(rec, b)
	rec[cursorBytes-1] = '\n'
	_, err := s.cf.WriteAt(rec, 0)
	if err == nil {
		err = datasync(s.cf)
	}
	if err != nil {
		return fmt.Errorf("cannot write spool cursor in %q: %w", s.dir, err)
	}
	return nil
}

// openCursor opens the cursor file for writing, once; a new file's
// directory entry is fsynced, so it cannot vanish with a power cut.
func (s *Spool) openCursor() error {
	if s.cf != nil {
		return nil
	}
	name := filepath.Join(s.dir, cursorName)
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	if statErr != nil {
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return err
		}
	}
	s.cf = f
	return nil
}
