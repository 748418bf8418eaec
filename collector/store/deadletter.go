package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// deadLetters is where a kind's rows that ClickHouse refuses on their own
// go: one file a day (UTC) beside the journal, deadletter-YYYY-MM-DD.ndjson,
// one JSON object a line:
//
//	{"time":"…","what":"results","code":395,"error":"code: 395, message: …",
//	 "segment":"seg-….ndjson","line":17,"row":{…the journal line, byte for byte…}}
//
// "row" comes last and is the line exactly as it was acknowledged and
// journaled (for beacons: the body as the browser sent it, with what the
// collector derived). Renamed to resubmit-*.ndjson (after fixing the table,
// or the rows with jq), the file goes back in at the collector's next start
// (see importResubmits).
type deadLetters struct {
	what, dir     string
	file          string // the file written last, for logs
	now           func() time.Time
	rows          *metrics.Counter
	bisectInserts *metrics.Counter
}

func newDeadLetters(what, dir string) *deadLetters {
	return &deadLetters{
		what: what, dir: dir, now: time.Now,
		rows:          metrics.GetOrCreateCounter(`meridian_store_deadletter_rows_total{what="` + what + `"}`),
		bisectInserts: metrics.GetOrCreateCounter(`meridian_store_bisect_inserts_total{what="` + what + `"}`),
	}
}

// deadRow is a row ClickHouse refused on its own.
type deadRow struct {
	segment string
	line    int // 0-based
	row     []byte
	err     error
}

type deadLetterHead struct {
	Time    time.Time `json:"time"`
	What    string    `json:"what"`
	Code    int32     `json:"code"`
	Error   string    `json:"error"`
	Segment string    `json:"segment"`
	Line    int       `json:"line"` // 1-based, as editors count
}

// write appends rows to today's file and fsyncs it: only then may their
// journal lines be let go.
func (d *deadLetters) write(rows []deadRow) error {
	if len(rows) == 0 {
		return nil
	}
	now := d.now().UTC()
	var buf []byte
	for _, r := range rows {
		code, text := serverError(r.err)
		head, err := json.Marshal(deadLetterHead{Time: now, What: d.what, Code: code, Error: text, Segment: r.segment, Line: r.line + 1})
		if err != nil {
			return fmt.Errorf("cannot encode a dead letter: %w", err)
		}
		buf = append(append(append(buf, head[:len(head)-1]...), `,"row":`...), r.row...)
		buf = append(buf, "}\n"...)
	}
	name := filepath.Join(d.dir, "deadletter-"+now.Format(time.DateOnly)+".ndjson")
	if err := appendDurably(name, buf); err != nil {
		return fmt.Errorf("cannot write %d refused %s to %s: %w", len(rows), d.what, name, err)
	}
	d.file = name
	d.rows.Add(len(rows))
	return nil
}

// appendDurably appends buf to the file name and fsyncs it (and the
// directory, when the file is new). A torn last line (a crash mid-write)
// is ended first, so that it stays one damaged line.
func appendDurably(name string, buf []byte) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	created, err := appendSynced(f, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created {
		err = syncDir(filepath.Dir(name))
	}
	return err
}

func appendSynced(f *os.File, buf []byte) (created bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if size := fi.Size(); size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if last[0] != '\n' {
			buf = append([]byte{'\n'}, buf...)
		}
	}
	if _, err := f.Write(buf); err != nil {
		return false, err
	}
	return fi.Size() == 0, f.Sync()
}

// importResubmits turns resubmit-*.ndjson files in the spool directory
// (dead-letter files an operator renamed once what ClickHouse refused is
// fixed) into segments numbered from next, so their rows go in like any
// other journaled row, and removes them. A file holding a line that is not
// a dead letter of this kind is left as it is, with a log line naming it:
// nothing in it is lost. A torn last line is skipped.
func (j *journal[T]) importResubmits(next uint64) ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "resubmit-*.ndjson"))
	if err != nil || len(names) == 0 {
		return nil, err
	}
	sort.Strings(names)
	var segs []uint64
	for _, name := range names {
		lines, err := j.resubmitLines(name)
		if err != nil {
			j.logf("%v: fix or remove the file, then restart", err)
			continue
		}
		if err := j.writeSegment(next, lines); err != nil {
			return nil, fmt.Errorf("cannot re-submit %s: %w", name, err)
		}
		if err := os.Remove(name); err != nil {
			return nil, fmt.Errorf("cannot remove re-submitted %s: %w", name, err)
		}
		j.logf("%s: %d %s re-submitted", filepath.Base(name), bytes.Count(lines, []byte{'\n'}), j.what)
		segs = append(segs, next)
		next++
	}
	return segs, syncDir(j.dir)
}

// resubmitLines reads the rows of a dead-letter file as journal lines.
func (j *journal[T]) resubmitLines(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, err)
	}
	var lines []byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	sc.Split(scanFullLines)
	for n := 1; sc.Scan(); n++ {
		var l struct {
			What string          `json:"what"`
			Row  json.RawMessage `json:"row"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("cannot re-submit %s: line %d is not a dead letter: %w", name, n, err)
		}
		if l.What != j.what || len(l.Row) == 0 {
			return nil, fmt.Errorf("cannot re-submit %s: line %d is not a dead letter of %s (want \"what\":%q and a \"row\")", name, n, j.what, j.what)
		}
		if _, err := j.codec.decode(l.Row); err != nil {
			return nil, fmt.Errorf("cannot re-submit %s: line %d: its row does not decode: %w", name, n, err)
		}
		lines = append(append(lines, l.Row...), '\n')
	}
	return lines, nil
}

// writeSegment writes lines to a new, complete segment id.
func (j *journal[T]) writeSegment(id uint64, lines []byte) error {
	seg, err := j.create(id)
	if err != nil {
		return err
	}
	err = j.append(seg, lines)
	if cerr := seg.f.Close(); err == nil {
		err = cerr
	}
	return err
}
