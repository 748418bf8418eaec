package query

import (
	"fmt"
	"time"
)

// tiers are the rollups kept at two granularities: base_1m per minute and
// base_1h per hour, the same columns (minute holds the hour's start).
var tiers = map[string]bool{"rum_cdn": true, "results_member": true}

// Tiered is a rollup's rows in the window: whole hours from base_1h and
// the window's ragged ends from base_1m, or every minute from base_1m when
// the window holds no whole hour or the query is bucketed by minute. Over a
// day an hour tier merges 60 times fewer aggregate states (see
// TestQueryBench); the answer is the same, as both tiers are fed the same
// rows by their materialized views.
func (d *tdata) Tiered(base string) (string, error) {
	if !tiers[base] {
		return "", fmt.Errorf("{{.Tiered %q}}: no such rollup with an hour tier", base)
	}
	minutes, hours := base+"_1m", base+"_1h"
	h1, h2 := d.from.Truncate(time.Hour), d.to.Truncate(time.Hour)
	if h1.Before(d.from) {
		h1 = h1.Add(time.Hour)
	}
	if d.byMinute || !h1.Before(h2) {
		return fmt.Sprintf("(SELECT * FROM %s WHERE minute >= %s AND minute <= %s)", minutes, d.From(), d.To()), nil
	}
	return fmt.Sprintf("(\n    SELECT * FROM %s WHERE minute >= %s AND minute < %s\n    UNION ALL\n"+
		"    SELECT * FROM %s WHERE minute >= %s AND minute < %s\n    UNION ALL\n"+
		"    SELECT * FROM %s WHERE minute >= %s AND minute <= %s\n)",
		minutes, d.From(), d.bind(h1), hours, d.bind(h1), d.bind(h2), minutes, d.bind(h2), d.To()), nil
}

// bind binds t as a DateTime.
func (d *tdata) bind(t time.Time) string {
	d.args = append(d.args, t.Unix())
	return "toDateTime(?)"
}
