package spool

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/VictoriaMetrics/metrics"
)

// damagedTotal counts spool lines found unusable on disk: a line that is
// not a result (flipped bits) or a torn last line (a crash mid-append, or a
// cut file). They are never sent, and never just deleted: quarantine keeps
// them beside their segment, in <segment>.ndjson.damaged, which Open
// ignores. A damaged line the shipper would have sent is also counted in
// meridian_agent_spool_dropped_total, with every result that will not be
// sent.
var damagedTotal = metrics.NewCounter("meridian_agent_spool_damaged_total")

// damagedSuffix names a segment's quarantine file.
const damagedSuffix = ".damaged"

// quarantineLines keeps damaged lines aside, segment by segment.
func (s *Spool) quarantineLines(lines []damagedLine) {
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && lines[j].seq == lines[i].seq {
			j++
		}
		group := make([][]byte, 0, j-i)
		for _, l := range lines[i:j] {
			group = append(group, l.line)
		}
		s.quarantine(lines[i].seq, group)
		i = j
	}
}

// quarantine appends lines (a newline ends each) to segment seq's
// quarantine file, fsynced, and counts them. It cannot fail the caller: the
// lines are unusable either way, and a spool that cannot keep them must
// still move past them; it logs instead.
func (s *Spool) quarantine(seq uint64, lines [][]byte) {
	if len(lines) == 0 {
		return
	}
	damagedTotal.Add(len(lines))
	var buf []byte
	for _, l := range lines {
		buf = append(buf, l...)
		if len(l) == 0 || l[len(l)-1] != '\n' {
			buf = append(buf, '\n')
		}
	}
	name := s.path(seq) + damagedSuffix
	if err := appendFile(name, buf); err != nil {
		s.opts.Logf("spool: cannot keep %d damaged lines in %s: %v (they are dropped)", len(lines), name, err)
	}
}

func appendFile(name string, buf []byte) error {
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && statErr != nil {
		err = syncDir(filepath.Dir(name))
	}
	if err != nil {
		return fmt.Errorf("cannot append to %s: %w", name, err)
	}
	return nil
}
