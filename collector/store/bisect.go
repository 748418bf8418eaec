package store

import (
	"sort"
)

// A batch ClickHouse refuses for the data of some of its rows (see
// refusesData) is split in two and each half inserted on its own; a half
// that is refused again is split again, down to single rows. Halves that
// go in are stored once: their journal lines are marked done, so nothing
// sends them again in this run of the collector. A row refused on its own
// goes to the kind's dead-letter file (see deadLetters) and its line is
// marked done too, so the journal moves past it and the rows after it go
// in. One bad row in a batch of n costs about 2·log2(n) extra inserts.
//
// Bisection runs only on rows read back from the journal, where each row's
// line is at hand as it was acknowledged: an insert from memory that
// ClickHouse refuses for its data leaves its rows in the journal (without
// the back-off of a failed insert), and they are read back at once.
//
// What this guarantees, and its limits:
//   - Nothing acknowledged is dropped: a row is either inserted or written
//     (and fsynced) to the dead-letter file before its segment can be
//     deleted. A transient error in the middle of a bisection stops it;
//     what went in or was dead-lettered so far is marked done, the rest is
//     retried with today's back-off (DrainEvery), nothing waits forever
//     behind a refused row.
//   - Without a crash, on one node, a good row of a refused batch is
//     inserted once into results: a refused INSERT stores nothing there.
//     Not so where a refused INSERT stored part of its rows, and halves
//     send them again (ReplacingMergeTree folds them in the raw table;
//     rollups count them again, as for any replay):
//     beacons are two INSERTs, rum_cdn then rum_pageviews, so when
//     rum_pageviews refuses a batch its rum_cdn rows are already in; a
//     materialized view may refuse a block its table took; and on a
//     cluster the Distributed table keeps what the other shards took.
//   - The progress of a bisection lives in memory. A crash in the middle
//     replays the whole segment after the restart: rows already stored go
//     in again (one row per id after merges and with FINAL, as for every
//     replay; rollups count them twice, see DESIGN.md) and a refused row
//     is dead-lettered again, so a dead-letter file may hold the same
//     line twice. Re-submitting both is harmless for the same reason.
//   - A timeout whose insert did in fact land is retried as today.

// bisect splits rows [lo, hi), which ClickHouse refused together, and
// inserts each half with send, splitting again a half refused for its
// data. stored hears of every range that went in, refused of every single
// row refused on its own (with the server's error). It returns at the
// first other error: ranges stored or refused until then were reported.
func bisect(lo, hi int, refusal error, send func(lo, hi int) error, stored func(lo, hi int), refused func(i int, err error)) error {
	if hi-lo == 1 {
		refused(lo, refusal)
		return nil
	}
	mid := lo + (hi-lo)/2
	for _, h := range [2][2]int{{lo, mid}, {mid, hi}} {
		err := send(h[0], h[1])
		switch {
		case err == nil:
			stored(h[0], h[1])
		case refusesData(err):
			if err := bisect(h[0], h[1], err, send, stored, refused); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return nil
}

// insertRun inserts rows read back from the segment named name, where
// rows[i] is line first+i, as read (lines[i]). When ClickHouse refuses
// them for their data it bisects them, dead-letters the rows refused on
// their own and marks in s every line stored or dead-lettered, so a retry
// after an error sends none of them again. It returns how many rows went
// in; with an error, the run is to be read again.
func (j *journal[T]) insertRun(name string, s *segState, first int, rows []T, lines [][]byte) (int, error) {
	err := j.send(rows)
	if err == nil || !refusesData(err) {
		if err != nil {
			return 0, err
		}
		return len(rows), nil
	}
	j.logf("ClickHouse refused %d %s read back from %s for their data (%v): inserting them in halves to find the rows it refuses", len(rows), j.what, name, err)
	n := 0
	var dead []deadRow
	send := func(lo, hi int) error {
		j.dead.bisectInserts.Inc()
		return j.send(rows[lo:hi])
	}
	stored := func(lo, hi int) {
		s.markDone(first+lo, hi-lo)
		n += hi - lo
	}
	refused := func(i int, err error) {
		dead = append(dead, deadRow{segment: name, line: first + i, row: lines[i], err: err})
	}
	err = bisect(0, len(rows), err, send, stored, refused)
	if derr := j.dead.write(dead); derr != nil {
		return n, derr // the refused rows stay in the journal and are tried again
	}
	for _, d := range dead {
		s.markDone(d.line, 1)
	}
	if len(dead) > 0 {
		j.logf("ClickHouse refuses %d %s of %s on their own (line %d: %v): written to %s", len(dead), j.what, name, dead[0].line+1, dead[0].err, j.dead.file)
	}
	return n, err
}

// markDone records lines first..first+n-1 as handled, keeping done sorted
// (it is sorted while the segment is read back, the only time this runs).
func (s *segState) markDone(first, n int) {
	i := sort.Search(len(s.done), func(i int) bool { return s.done[i].first >= first })
	s.done = append(s.done, span{})
	copy(s.done[i+1:], s.done[i:])
	s.done[i] = span{first, n}
}
