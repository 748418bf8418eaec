package e2e

import (
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/e2e/faultkit"
)

// TestFaults is the fault-injection suite (issue 15): one harness, and a
// scenario per fault, each ending in exact counts of every result and
// beacon — produced, acknowledged, stored, stored more than once, lost,
// stored wrong — printed as one table (lines starting FAULTS). Long
// variants (a 60 s ClickHouse outage, a minute-long link cut) run under
// MERIDIAN_SOAK=1.
//
// Definitions. Produced: result ids the agents spooled (read from their
// spools) or the test posted, beacon pvs the generator sent. Acknowledged:
// a collector answered 2xx (seen by the proxy, whether or not the sender
// got the answer). Stored: the id has a row in ClickHouse. Duplicates:
// copies a reader counts twice — more than one replay = 0 row, or more
// than one row with FINAL. Lost: a result produced, or a beacon
// acknowledged, that is not stored and not accounted for. Wrong: a stored
// row whose agent, region, check, kind, target, ts (ms), ok, error or
// total_ms (url, lcp_ms, transfer_bytes for beacons) differ from what was
// produced, or a stored id never produced. Accounted: not stored for a
// reason the product counts elsewhere (an agent's spool cap, a dead letter,
// a quarantined or destroyed piece of a damaged file).
func TestFaults(t *testing.T) {
	chtest.Addr(t) // fails, with the command to start it, when there is no test ClickHouse
	faultRows = nil
	for _, s := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"collector-kill", faultCollectorKill},
		{"clickhouse-outage", faultClickHouseOutage},
		{"clickhouse-refuses", faultClickHouseRefuses},
		{"link-cut-and-reset", faultLinkCutAndReset},
		{"journal-cap", faultJournalCap},
		{"agent-spool-cap", faultAgentSpoolCap},
		{"agent-kill-mid-batch", faultAgentKillMidBatch},
		{"agent-clock-skew", faultAgentClockSkew},
		{"damaged-segments", faultDamagedSegments},
		{"journal-disk-full", faultJournalDiskFull},
		{"poison-row", faultPoisonRow},
	} {
		t.Run(s.name, s.run)
	}
	printFaultTable(t)
}

// faultRow is one line of the FAULTS table.
type faultRow struct {
	name string
	c    faultkit.Count
	secs float64
	note string
}

var faultRows []faultRow

// faultCHConfig holds the config templates of the ClickHouse servers the
// scenarios that stop theirs start (local.sh's).
const faultCHConfig = "../deploy/clickhouse"

// finish heals every link, stops the beacon generator and the agents (on
// SIGTERM they ship what they hold), waits for the collectors' journals to
// empty and counts. Anything lost, duplicated or stored wrong fails the
// scenario. The collectors keep running (the scenario may read their
// metrics) until the test ends.
func (e *faultEnv) finish() faultkit.Count {
	e.t.Helper()
	for _, p := range e.proxies() {
		p.Heal()
	}
	e.waitDrained()
	if e.gen != nil {
		e.gen.halt()
	}
	e.stopAt = time.Now()
	e.stopAgents()
	e.checkRuns()
	if !faultWait(60*time.Second, func() bool { return e.journalSegments() == 0 }) {
		e.t.Errorf("the collectors' journals still hold %d segments 60s after the agents stopped", e.journalSegments())
	}
	total := e.tally()
	e.counted, e.secs = &total, time.Since(e.started).Seconds()
	return total
}

// tally reads what ClickHouse stored and counts it against the ledger,
// failing the scenario on every id lost, stored twice or stored wrong.
func (e *faultEnv) tally() faultkit.Count {
	e.t.Helper()
	ch, db := e.chOf()
	res, err := faultkit.StoredResults(ch, db)
	if err != nil {
		e.t.Fatal(err)
	}
	bea, err := faultkit.StoredBeacons(ch, db)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.beforeTally != nil {
		e.beforeTally(res)
	}
	cr, why := e.led.Tally(faultkit.Results, res, e.accounted)
	cb, whyB := e.led.Tally(faultkit.Beacons, bea, e.accounted)
	why = append(why, whyB...)
	for i, w := range why {
		if i == 20 {
			e.t.Errorf("… and %d more", len(why)-20)
			break
		}
		e.t.Error(w)
	}
	e.note("results %d/%d/%d, beacons %d/%d/%d (produced/acked/stored), %d beacons shed",
		cr.Produced, cr.Acked, cr.Stored, cb.Produced, cb.Acked, cb.Stored, cb.Shed)
	if cr.Produced < 20 || cb.Produced < 20 && e.gen != nil {
		e.t.Errorf("only %d results and %d beacons were produced: the scenario exercised too little", cr.Produced, cb.Produced)
	}
	return cr.Add(cb)
}

// addRow adds the scenario's row to the table once it is over, with the
// notes its last checks added.
func (e *faultEnv) addRow() {
	if e.counted != nil {
		faultRows = append(faultRows, faultRow{path.Base(e.t.Name()), *e.counted, e.secs, faultNote(e.notes)})
	}
}

// printFaultTable prints the table, one FAULTS line a row, for the issue.
func printFaultTable(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "FAULTS %-20s %8s %8s %8s %5s %5s %6s %9s %6s  %s\n", "scenario", "produced", "acked", "stored", "dups", "lost", "wrong", "accounted", "secs", "notes")
	var sum faultkit.Count
	var secs float64
	for _, r := range faultRows {
		fmt.Fprintf(&b, "FAULTS %-20s %8d %8d %8d %5d %5d %6d %9d %6.1f  %s\n", r.name, r.c.Produced, r.c.Acked, r.c.Stored,
			r.c.Duplicates, r.c.Lost, r.c.Wrong, r.c.Accounted, r.secs, r.note)
		sum, secs = sum.Add(r.c), secs+r.secs
	}
	fmt.Fprintf(&b, "FAULTS %-20s %8d %8d %8d %5d %5d %6d %9d %6.1f\n", "total", sum.Produced, sum.Acked, sum.Stored,
		sum.Duplicates, sum.Lost, sum.Wrong, sum.Accounted, secs)
	fmt.Print(b.String())
	t.Log("\n" + b.String())
}
