// Package query owns the SQL behind Meridian's latency maps (named,
// embedded .sql files), how they are parameterised and run, and how their
// answers are printed (aligned table, CSV, JSON).
package query

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed *.sql
var sqlFS embed.FS

// Table is a query's answer: column names and rows of printable values
// (string, integers, float64 rounded to 0.01, nil for "no value").
type Table struct {
	Columns []string
	Rows    [][]any
}

// Filters lists the filters a query may take, in the order usage lists them.
var Filters = []string{"site", "country", "cdn", "target", "region", "device", "kind", "source"}

// Buckets are the --bucket values: the time column's expression per
// bucket, for a query's raw time column (ts) or its rollup's (minute).
var Buckets = map[string]string{"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay"}

// AutoRollup is the shortest window a query reads from its rollup unless
// told otherwise: below it the raw rows are cheap and exact (FINAL folds
// replays; a rollup counts a replayed row again and holds whole minutes).
const AutoRollup = 6 * time.Hour

// Options select, filter and group one named query's rows.
type Options struct {
	Since    time.Duration     // the window ends at To (default now) and starts Since before
	From, To time.Time         // an explicit window; From set overrides Since
	By       []string          // dimensions; default the query's own
	Filters  map[string]string // filter name (see Filters) → value; only those the query has
	Bucket   string            // minute, hour or day: group by time too (the timeseries form)
	Raw      bool              // never read a rollup
	Rollup   bool              // read the rollup or fail saying why not
	// Countries maps agent names to ISO countries for queries over agent
	// results. Run fills it from agent_countries; tests set it.
	Countries map[string]string
	Now       time.Time // default time.Now(); tests inject it
}

// UsageError is a mistake in a query's options (unknown query, dimension,
// filter, window); the command line maps it to exit status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usage(format string, args ...any) error { return &UsageError{fmt.Sprintf(format, args...)} }

// IsUsage says whether err is a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// Query is one named query: what it answers and what it can be asked.
type Query struct {
	Name    string
	Purpose string // the .sql file's opening "-- NAME: purpose" line
	spec    *spec
}

// List returns every named query, by name.
func List() []Query {
	var out []Query
	for _, name := range sortedKeys(registry) {
		out = append(out, Query{Name: name, Purpose: purpose(registry[name].file), spec: registry[name]})
	}
	return out
}

// Dimensions returns the names a query can group by (raw form), sorted.
func (q Query) Dimensions() []string { return sortedKeys(q.spec.dims) }

// DefaultBy returns what the query groups by when --by is not given.
func (q Query) DefaultBy() []string { return q.spec.defaultBy }

// Filters returns the filters the query takes, in Filters' order.
func (q Query) Filters() []string { return q.spec.filterNames() }

// HasRollup says whether the query has a rollup form.
func (q Query) HasRollup() bool { return q.spec.rollup != "" }

// Buckets says whether the query takes --bucket.
func (q Query) Buckets() bool { return q.spec.ts != "" }

func purpose(file string) string {
	b, err := sqlFS.ReadFile(file)
	if err != nil {
		return ""
	}
	line, _ := bufio.NewReader(bytes.NewReader(b)).ReadString('\n')
	_, p, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "--")), ": ")
	return p
}

// Run runs the named query on conn. ctx may carry clickhouse-go query
// options (for example clickhouse.WithProgress).
func Run(ctx context.Context, conn driver.Conn, name string, o Options) (*Table, error) {
	s, ok := registry[name]
	if !ok {
		return nil, usage("unknown query %q: choose from %s", name, strings.Join(sortedKeys(registry), ", "))
	}
	r, err := s.plan(name, o) // refuses bad options before asking the server
	if err != nil {
		return nil, err
	}
	if r.countries && o.Countries == nil {
		if o.Countries, err = agentCountries(ctx, conn); err != nil {
			return nil, err
		}
		if r, err = s.plan(name, o); err != nil {
			return nil, err
		}
	}
	rows, err := conn.Query(ctx, r.sql, r.args...)
	if err != nil {
		return nil, fmt.Errorf("cannot run query %s: %w", name, err)
	}
	defer rows.Close()
	t, err := scan(rows)
	if err != nil {
		return nil, fmt.Errorf("cannot read query %s: %w", name, err)
	}
	return t, nil
}

// agentCountries reads each agent's country, the latest version.
func agentCountries(ctx context.Context, conn driver.Conn) (map[string]string, error) {
	rows, err := conn.Query(ctx, "SELECT agent, CAST(country AS String) FROM agent_countries FINAL")
	if err != nil {
		return nil, fmt.Errorf("cannot read agent countries: %w", err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var a, c string
		if err := rows.Scan(&a, &c); err != nil {
			return nil, fmt.Errorf("cannot read agent countries: %w", err)
		}
		m[a] = c
	}
	return m, rows.Err()
}

// Rendered is a query ready to send: SQL, bound values in placeholder
// order, the grouping columns the answer starts with, and whether it reads
// a rollup.
type Rendered struct {
	SQL    string
	Args   []any
	Dims   []string
	Rollup bool
}

// Render renders the named query for o without running it (for tests that
// run it on several engines, and for --explain style output).
func Render(name string, o Options) (*Rendered, error) {
	s, ok := registry[name]
	if !ok {
		return nil, usage("unknown query %q: choose from %s", name, strings.Join(sortedKeys(registry), ", "))
	}
	r, err := s.plan(name, o)
	if err != nil {
		return nil, err
	}
	return &Rendered{SQL: r.sql, Args: r.args, Dims: r.dims, Rollup: r.rollup}, nil
}

func parse(name string) (*template.Template, error) {
	t, err := template.ParseFS(sqlFS, name)
	if err != nil {
		return nil, fmt.Errorf("cannot load query %s: %w", name, err)
	}
	return t, nil
}

func sortedKeys[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
