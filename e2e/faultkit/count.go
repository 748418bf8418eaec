package faultkit

import (
	"fmt"
	"strconv"
)

// Copy is one stored row of an id.
type Copy struct {
	Replay bool
	Sum    string
}

// Stored is what ClickHouse holds of a kind: every raw row by id, and how
// many rows each id still has when read with FINAL.
type Stored struct {
	Copies map[string][]Copy
	Final  map[string]int
}

// Count is a scenario's exact counts of one kind, or of all.
type Count struct {
	Produced   int // ids produced (results spooled by agents or posted; beacons sent)
	Acked      int // ids a collector answered 2xx for
	Stored     int // produced ids with at least one row
	Duplicates int // extra copies a reader counts: replay = 0 rows past one, or FINAL rows past one
	Lost       int // results produced, beacons acknowledged: not stored, and not accounted for
	Wrong      int // ids stored with other values than produced, or never produced
	Accounted  int // not stored, and why is known and counted elsewhere (dropped, dead-lettered, quarantined, destroyed)
	Shed       int // beacons not acknowledged and not stored: the browser was told to go away
}

// Add sums counts.
func (c Count) Add(o Count) Count {
	return Count{c.Produced + o.Produced, c.Acked + o.Acked, c.Stored + o.Stored, c.Duplicates + o.Duplicates,
		c.Lost + o.Lost, c.Wrong + o.Wrong, c.Accounted + o.Accounted, c.Shed + o.Shed}
}

// Tally counts kind k: the ledger against what ClickHouse stored. accounted
// names ids known not to be stored for a counted reason. Results are
// retried by their agents until stored, so every one produced must be
// stored; a beacon is sent once, so every one acknowledged must be.
func (l *Ledger) Tally(k Kind, st Stored, accounted map[string]bool) (Count, []string) {
	var c Count
	var why []string
	items := l.Items(k)
	for id, it := range items {
		c.Produced++
		if it.Acked {
			c.Acked++
		}
		copies := st.Copies[id]
		switch {
		case len(copies) > 0:
			c.Stored++
			if accounted[id] {
				why = append(why, fmt.Sprintf("%s %s is stored though accounted as not", k, id))
			}
		case accounted[id]:
			c.Accounted++
		case k == Results || it.Acked:
			c.Lost++
			why = append(why, fmt.Sprintf("lost %s %s (%s, acked %v, sent %d times)", k, id, it.Who, it.Acked, it.Sent))
		default:
			c.Shed++
		}
		if d := extra(copies, st.Final[id]); d > 0 {
			c.Duplicates += d
			why = append(why, fmt.Sprintf("%s %s is stored %d times over (%d raw rows)", k, id, d, len(copies)))
		}
		if wrong(it, copies) {
			c.Wrong++
			why = append(why, fmt.Sprintf("%s %s stored wrong: produced %q, stored %v", k, id, it.Sum, copies))
		}
	}
	for id := range st.Copies {
		if _, ok := items[id]; !ok {
			c.Wrong++
			why = append(why, fmt.Sprintf("%s %s stored but never produced: %v", k, id, st.Copies[id]))
		}
	}
	return c, why
}

// extra is how many times over a reader counts an id: queries count
// replay = 0 rows as they are (at most one may exist), FINAL folds the rest.
func extra(copies []Copy, final int) int {
	first := 0
	for _, c := range copies {
		if !c.Replay {
			first++
		}
	}
	return max(first-1, final-1, 0)
}

func wrong(it Item, copies []Copy) bool {
	if it.Mismatch {
		return true
	}
	for _, c := range copies {
		if it.Sum != "" && c.Sum != it.Sum {
			return true
		}
	}
	return false
}

// StoredResults reads every row of db's results table.
func StoredResults(ch *CH, db string) (Stored, error) {
	rows, err := ch.Query(db, `SELECT id, replay, agent, region, check_name, kind, target,
		toUInt64(ts) * 1000 + ts_ms, ok, error, total_ms FROM results`)
	if err != nil {
		return Stored{}, err
	}
	st := Stored{Copies: map[string][]Copy{}}
	for _, r := range rows {
		if len(r) != 11 {
			return Stored{}, fmt.Errorf("results row %q: want 11 fields", r)
		}
		st.Copies[r[0]] = append(st.Copies[r[0]], Copy{Replay: r[1] == "1",
			Sum: Sum(r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], chFloat(r[10]))})
	}
	st.Final, err = finalCounts(ch, db, "results", "id")
	return st, err
}

// StoredBeacons reads every page view of db's rum_pageviews table.
func StoredBeacons(ch *CH, db string) (Stored, error) {
	rows, err := ch.Query(db, `SELECT pv, replay, url, lcp_ms, transfer_bytes FROM rum_pageviews`)
	if err != nil {
		return Stored{}, err
	}
	st := Stored{Copies: map[string][]Copy{}}
	for _, r := range rows {
		if len(r) != 5 {
			return Stored{}, fmt.Errorf("rum_pageviews row %q: want 5 fields", r)
		}
		st.Copies[r[0]] = append(st.Copies[r[0]], Copy{Replay: r[1] == "1", Sum: BeaconSum(r[2], chFloat(r[3]), r[4])})
	}
	st.Final, err = finalCounts(ch, db, "rum_pageviews", "pv")
	return st, err
}

// BeaconSum is a beacon's fingerprint: its page URL, LCP and transfer size.
func BeaconSum(url, lcp, transferBytes string) string { return Sum(url, lcp, transferBytes) }

func finalCounts(ch *CH, db, table, id string) (map[string]int, error) {
	rows, err := ch.Query(db, fmt.Sprintf("SELECT %s, count() FROM %s FINAL GROUP BY %s HAVING count() > 1", id, table, id))
	out := map[string]int{}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		out[r[0]] = n
	}
	return out, err
}

// chFloat reads a float as ClickHouse printed it and prints it as
// floatText does, so that both sides' fingerprints compare.
func chFloat(s string) string {
	if s == `\N` {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return floatText(&f)
}
