package query

import (
	"fmt"
	"strings"
)

// rowKeys are the raw tables a query reads through {{.Rows}}, each with
// its ReplacingMergeTree sorting key: the columns a replayed copy of a row
// shares with the original.
var rowKeys = map[string]string{
	"results":       "check_name, agent, ts, id",
	"rum_cdn":       "site, pv, kind, cdn, host",
	"rum_pageviews": "site, pv",
}

// RowsSettings ends every statement that reads .Rows.
const RowsSettings = "\nSETTINGS distributed_product_mode = 'local', use_index_for_in_with_subqueries = 0"

// Rows is a raw table's rows in the window, each stored row counted once,
// without FINAL.
//
// A copy of a row is stored twice only when it was sent or inserted again,
// and whoever did so marked the copy replay = 1 (migration 0050): the
// collector inserting again after an insert whose outcome it does not know,
// or an agent sending a batch again. So at most one copy of a row has
// replay = 0. The rows are then those with replay = 0, plus one copy of each
// replayed row that has no replay = 0 copy (its original never landed, or a
// merge kept the replayed copy). The second part reads the replay column
// (one byte a row, almost all zeros) and, where there are replayed rows,
// the ts column and the key columns of the granules holding their ts: with
// no replays the query costs what a plain read costs, where FINAL costs
// 6–10× on 18.16 (one thread) and several times on current servers; after
// a replayed batch it costs more, in proportion to the batch. The NOT IN subquery runs on each shard
// with distributed_product_mode = 'local' (RowsSettings, which the query
// ends with: 18.16 takes no string settings over the native protocol, but
// does in a SETTINGS clause): every copy of a row is on the same shard, as
// FINAL needs too. The primary index is not asked about the IN sets: it
// prunes little for the NOT IN and costs more than it saves (measured in
// TestQueryBench).
func (d *tdata) Rows(table string) (string, error) {
	d.usedRows = true
	return RowsSQL(table, func() string { return "ts >= " + d.From() + " AND ts <= " + d.To() })
}

// RowsSQL is .Rows for other SQL (the dashboards): a parenthesised
// subquery over table's rows where window (a condition on ts, asked for
// once per use, in text order) holds. The statement must end with
// RowsSettings.
func RowsSQL(table string, window func() string) (string, error) {
	key, ok := rowKeys[table]
	if !ok {
		return "", fmt.Errorf("no raw table %q to read rows of (know %s)", table, strings.Join(sortedKeys(rowKeys), ", "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(\n    SELECT * FROM %s WHERE %s AND replay = 0\n    UNION ALL\n", table, window())
	fmt.Fprintf(&b, "    SELECT * FROM %s PREWHERE replay = 1 WHERE %s\n", table, window())
	// The originals of replayed rows: a replayed copy keeps its original's
	// ts, so the PREWHERE on ts reads the key columns of few granules.
	fmt.Fprintf(&b, "        AND (%s) NOT IN (SELECT %s FROM %s PREWHERE replay = 0 AND ts IN (SELECT ts FROM %s PREWHERE replay = 1 WHERE %s) WHERE %s\n",
		key, key, table, table, window(), window())
	fmt.Fprintf(&b, "            AND (%s) IN (SELECT %s FROM %s PREWHERE replay = 1 WHERE %s))\n", key, key, table, window())
	fmt.Fprintf(&b, "    LIMIT 1 BY %s\n)", key)
	return b.String(), nil
}
