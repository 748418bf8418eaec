package query

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
)

// spec is how a named query is asked: its SQL files, the dimensions and
// filters it has (names users type → SQL expressions: only these ever reach
// SQL text, every value is bound) and its time column for buckets.
type spec struct {
	file, rollup     string            // .sql files; rollup "" when there is none
	dims, rollupDims map[string]string // --by name → expression
	filt, rollupFilt map[string]string // filter name → expression compared with the bound value
	defaultBy        []string
	ts, rollupTS     string // the time column; "" when the query takes no --bucket
	defaultBucket    string
	sourceAll        bool // latency-map: a source column is always there ('all' when both are merged)
}

// country stands, in a dimension or filter expression, for the agent's
// country: transform over bound arrays read from agent_countries.
const country = "@COUNTRY"

func (s *spec) filterNames() []string {
	var out []string
	for _, f := range Filters {
		if _, ok := s.filt[f]; ok {
			out = append(out, f)
		}
	}
	return out
}

type plan struct {
	sql       string
	args      []any
	dims      []string // the grouping columns, in the answer's order
	rollup    bool
	countries bool // the SQL maps agents to countries
}

// window returns the query's time range.
func window(o Options) (from, to time.Time, err error) {
	to = o.To
	if to.IsZero() {
		to = o.Now
		if to.IsZero() {
			to = time.Now()
		}
	}
	switch {
	case !o.From.IsZero():
		from = o.From
	case o.Since > 0:
		from = to.Add(-o.Since)
	default:
		return from, to, usage("cannot choose the window: give --since (for example 1h) or --from")
	}
	if !from.Before(to) {
		return from, to, usage("cannot query an empty window: --from %s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

func (s *spec) plan(name string, o Options) (*plan, error) {
	from, to, err := window(o)
	if err != nil {
		return nil, err
	}
	by := o.By
	if len(by) == 0 {
		by = s.defaultBy
	}
	for i, d := range by {
		if _, ok := s.dims[d]; !ok {
			return nil, usage("query %s cannot group by %q: choose from %s", name, d, strings.Join(sortedKeys(s.dims), ", "))
		}
		if slices.Contains(by[:i], d) {
			return nil, usage("query %s: --by names %s twice", name, d)
		}
	}
	for _, f := range sortedKeys(o.Filters) {
		if _, ok := s.filt[f]; !ok {
			return nil, usage("query %s takes no --%s filter: it takes %s", name, f, flagList(s.filterNames()))
		}
	}
	bucket := o.Bucket
	if bucket == "" {
		bucket = s.defaultBucket
	}
	if bucket != "" {
		if s.ts == "" {
			return nil, usage("query %s cannot be bucketed by time: it has no time column", name)
		}
		if _, ok := Buckets[bucket]; !ok {
			return nil, usage("unknown --bucket %q: choose from %s", bucket, strings.Join(sortedKeys(Buckets), ", "))
		}
	}
	useRollup, err := s.chooseRollup(name, o, by, from, to)
	if err != nil {
		return nil, err
	}
	file := s.file
	if useRollup {
		file = s.rollup
		from = from.Truncate(time.Minute) // the rollup's minute holding from
	}
	d := s.data(o, by, bucket, useRollup)
	d.from, d.to, d.byMinute = from, to, bucket == "minute"
	t, err := parse(file)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("cannot render query %s: %w", name, err)
	}
	if d.usedRows {
		b.WriteString(RowsSettings)
	}
	p := &plan{sql: b.String(), args: d.args, rollup: useRollup, countries: d.usedCountries}
	for _, dim := range d.dims {
		p.dims = append(p.dims, dim[0])
	}
	return p, nil
}

// data is the template's grouping and filters: the time bucket first, then
// the dimensions asked for, then (latency-map) the source.
func (s *spec) data(o Options, by []string, bucket string, rollup bool) *tdata {
	dimExpr, filtExpr, ts := s.dims, s.filt, s.ts
	if rollup {
		dimExpr, filtExpr, ts = s.rollupDims, s.rollupFilt, s.rollupTS
	}
	d := &tdata{countries: o.Countries}
	if bucket != "" {
		d.dims = append(d.dims, [2]string{"time", Buckets[bucket] + "(" + ts + ")"})
	}
	for _, b := range by {
		d.dims = append(d.dims, [2]string{b, dimExpr[b]})
	}
	if s.sourceAll && !slices.Contains(by, "source") {
		e := "'all'"
		if o.Filters["source"] != "" {
			e = dimExpr["source"]
		}
		d.dims = append(d.dims, [2]string{"source", e})
	}
	for _, f := range sortedKeys(o.Filters) {
		d.filters = append(d.filters, [2]string{filtExpr[f], o.Filters[f]})
	}
	return d
}

// chooseRollup reads the rollup when told to, or when the window is long
// and the rollup holds the grouping and filters; --raw never does.
func (s *spec) chooseRollup(name string, o Options, by []string, from, to time.Time) (bool, error) {
	var missing []string
	if s.rollup == "" {
		missing = append(missing, "it has no rollup")
	}
	for _, d := range by {
		if _, ok := s.rollupDims[d]; !ok && s.rollup != "" {
			missing = append(missing, fmt.Sprintf("the rollup has no %s (it groups by %s)", d, strings.Join(sortedKeys(s.rollupDims), ", ")))
		}
	}
	for _, f := range sortedKeys(o.Filters) {
		if _, ok := s.rollupFilt[f]; !ok && s.rollup != "" {
			missing = append(missing, fmt.Sprintf("the rollup cannot filter by --%s", f))
		}
	}
	switch {
	case o.Rollup && o.Raw:
		return false, usage("--rollup and --raw contradict each other: give one")
	case o.Rollup && len(missing) > 0:
		return false, usage("query %s cannot read a rollup: %s", name, strings.Join(missing, "; "))
	case o.Rollup:
		return true, nil
	}
	return !o.Raw && len(missing) == 0 && to.Sub(from) >= AutoRollup, nil
}

func flagList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return "--" + strings.Join(names, ", --")
}

// tdata is what a query's template sees. Its methods append the values
// they bind, so the arguments come out in the placeholders' text order.
type tdata struct {
	from, to      time.Time
	dims          [][2]string // name, expression
	filters       [][2]string // expression, value
	countries     map[string]string
	args          []any
	usedCountries bool
	usedRows      bool
	byMinute      bool // bucketed by minute: a rollup's hour tier cannot answer
}

// From and To bind the window's ends as DateTime.
func (d *tdata) From() string { d.args = append(d.args, d.from.Unix()); return "toDateTime(?)" }
func (d *tdata) To() string   { d.args = append(d.args, d.to.Unix()); return "toDateTime(?)" }

// Country is the agent column's country (transform over bound arrays).
func (d *tdata) Country() string { return d.expand(country) }

// Dims is the SELECT list of the grouping expressions, aliased d_NAME.
func (d *tdata) Dims() string {
	parts := make([]string, len(d.dims))
	for i, dim := range d.dims {
		parts[i] = d.expand(dim[1]) + " AS d_" + dim[0]
	}
	return strings.Join(parts, ", ")
}

// Group is the grouping aliases, for GROUP BY, ORDER BY and outer SELECTs.
func (d *tdata) Group() string {
	parts := make([]string, len(d.dims))
	for i, dim := range d.dims {
		parts[i] = "d_" + dim[0]
	}
	return strings.Join(parts, ", ")
}

// Where is " AND expression = ?" per filter given.
func (d *tdata) Where() string {
	var b strings.Builder
	for _, f := range d.filters {
		b.WriteString(" AND " + d.expand(f[0]) + " = ?")
		d.args = append(d.args, f[1])
	}
	return b.String()
}

func (d *tdata) expand(e string) string {
	parts := strings.Split(e, country)
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			keys, vals := []string{""}, []string{""} // never empty: 18.16 cannot type []
			for _, a := range sortedKeys(d.countries) {
				keys, vals = append(keys, a), append(vals, d.countries[a])
			}
			d.args = append(d.args, keys, vals)
			d.usedCountries = true
			b.WriteString("transform(CAST(agent AS String), ?, ?, '')")
		}
		b.WriteString(p)
	}
	return b.String()
}
