// Package query owns the SQL behind Meridian's latency maps and how its
// answers are printed (aligned table, CSV, JSON).
package query

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"math"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed *.sql
var sqlFS embed.FS

// Dimensions maps the names users may group by to results-table columns.
// Only these ever reach SQL text; everything else is a bound parameter.
var Dimensions = map[string]string{
	"region": "region",
	"agent":  "agent",
	"target": "target",
	"check":  "check_name",
	"kind":   "kind",
	"cdn":    "cdn",
	"member": "cdn_member",
	"pop":    "cdn_pop",
	"proto":  "http_proto",
}

// RollupDimensions are the Dimensions the per-minute rollup (results_1m)
// keeps, so the ones LatencyOptions.Rollup can group by.
var RollupDimensions = map[string]string{
	"region": "region",
	"target": "target",
	"check":  "check_name",
	"kind":   "kind",
}

// LatencyOptions select and group the results of the latency query.
type LatencyOptions struct {
	Since time.Duration // look back this far from Until
	Until time.Time     // default now
	By    []string      // keys of Dimensions; default region, target
	Kind  string        // only results of this kind; empty for all
	// Rollup reads the per-minute rollup (latency_1m.sql) instead of the
	// raw results: for long windows; whole minutes, By limited to
	// RollupDimensions, and a replayed result counts again.
	Rollup bool
}

// Table is a query's answer: column names and rows of printable values.
type Table struct {
	Columns []string
	Rows    [][]any
}

// latencySQL renders the latency query for o (defaults applied) and the
// arguments to bind; cols are the grouping columns.
func latencySQL(o *LatencyOptions) (sql string, args []any, cols []string, err error) {
	if len(o.By) == 0 {
		o.By = []string{"region", "target"}
	}
	if o.Since <= 0 {
		return "", nil, nil, fmt.Errorf("cannot query latency: --since must be positive (for example 1h)")
	}
	if o.Until.IsZero() {
		o.Until = time.Now()
	}
	dims, file := Dimensions, "latency.sql"
	from := o.Until.Add(-o.Since)
	if o.Rollup {
		dims, file = RollupDimensions, "latency_1m.sql"
		from = from.Truncate(time.Minute) // the rollup's minute holding from
	}
	cols = make([]string, len(o.By))
	for i, d := range o.By {
		c, ok := dims[d]
		if !ok {
			return "", nil, nil, fmt.Errorf("cannot group by %q: choose from %s", d, strings.Join(sortedKeys(dims), ", "))
		}
		cols[i] = c
	}
	sql, err = render(file, map[string]any{"By": strings.Join(cols, ", "), "Kind": o.Kind != ""})
	if err != nil {
		return "", nil, nil, err
	}
	args = []any{from.Unix(), o.Until.Unix()}
	if o.Kind != "" {
		args = append(args, o.Kind)
	}
	return sql, args, cols, nil
}

// Latency runs the latency query.
func Latency(ctx context.Context, conn driver.Conn, o LatencyOptions) (*Table, error) {
	sql, args, cols, err := latencySQL(&o)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot run latency query: %w", err)
	}
	defer rows.Close()
	t := &Table{Columns: append(append([]string{}, o.By...), "n", "failed", "p50_ms", "p95_ms", "p99_ms")}
	for rows.Next() {
		group := make([]string, len(cols))
		var n, failed uint64
		var q []float64
		dest := make([]any, 0, len(cols)+3)
		for i := range group {
			dest = append(dest, &group[i])
		}
		if err := rows.Scan(append(dest, &n, &failed, &q)...); err != nil {
			return nil, fmt.Errorf("cannot read latency row: %w", err)
		}
		if o.Rollup && len(q) == 4 {
			q = []float64{q[0], q[2], q[3]} // p50, p90, p95, p99 → p50, p95, p99
		}
		row := make([]any, 0, len(t.Columns))
		for _, g := range group {
			row = append(row, g)
		}
		row = append(row, n, failed)
		for _, v := range q {
			row = append(row, quantile(v, n-failed))
		}
		t.Rows = append(t.Rows, row)
	}
	return t, rows.Err()
}

// quantile turns ClickHouse's answer for an empty set (nan) into "no value".
func quantile(v float64, samples uint64) any {
	if samples == 0 || math.IsNaN(v) {
		return nil
	}
	return math.Round(v*100) / 100
}

func render(name string, data any) (string, error) {
	t, err := template.ParseFS(sqlFS, name)
	if err != nil {
		return "", fmt.Errorf("cannot load query %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("cannot render query %s: %w", name, err)
	}
	return b.String(), nil
}

func sortedKeys(m map[string]string) []string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sortStrings(names)
	return names
}
