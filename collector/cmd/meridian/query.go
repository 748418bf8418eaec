package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/query"
)

func queryCommand() *cli.Command {
	subs := []*cli.Command{{
		Name:  "list",
		Usage: "name every query and what it answers",
		Flags: clickhouseFlags(), // accepted like every query's, though list reads no database
		Action: func(c *cli.Context) error {
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			for _, q := range query.List() {
				fmt.Fprintf(tw, "%s\t%s\n", q.Name, q.Purpose)
			}
			return tw.Flush()
		},
	}}
	for _, q := range query.List() {
		subs = append(subs, namedQueryCommand(q))
	}
	return &cli.Command{
		Name:        "query",
		Usage:       "run a named query over stored results (`meridian query list` names them)",
		Subcommands: subs,
	}
}

func namedQueryCommand(q query.Query) *cli.Command {
	desc := fmt.Sprintf("Groups by (--by): %s; by default %s.\nFilters: %s.", strings.Join(q.Dimensions(), ", "), strings.Join(q.DefaultBy(), ","), flagNames(q.Filters()))
	if q.Buckets() {
		desc += "\n--bucket minute|hour|day makes it a time series."
	}
	if q.HasRollup() {
		desc += fmt.Sprintf("\nReads its per-minute rollup when the window is at least %s and the rollup holds the grouping and filters (whole minutes; a replayed row counts again); --raw reads the exact raw rows.", query.AutoRollup)
	}
	flags := append(clickhouseFlags(),
		&cli.DurationFlag{Name: "since", Value: time.Hour, Usage: "look back this far from --to (or now)"},
		&cli.StringFlag{Name: "from", Usage: "window start, RFC 3339 (instead of --since)"},
		&cli.StringFlag{Name: "to", Usage: "window end, RFC 3339 (default now)"},
		&cli.StringFlag{Name: "by", Usage: "group by these comma-separated dimensions (default the query's own)"},
		&cli.StringFlag{Name: "bucket", Usage: "also group by time: minute, hour or day (a time series)"},
		&cli.StringFlag{Name: "format", Value: "table", Usage: "table, csv or json"},
		&cli.BoolFlag{Name: "raw", Usage: "read the raw rows (exact, replays folded) even over a long window"},
		&cli.BoolFlag{Name: "rollup", Usage: "read the per-minute rollup (fast over long windows; whole minutes; a replayed row counts again) or fail saying why not"},
		&cli.StringFlag{Name: "svg", Usage: "also draw `FILE`.svg: a heatmap of the first two groupings (latency-map: a world map, and FILE-heatmap.svg of country × member)"},
		&cli.StringFlag{Name: "png", Usage: "the same as a PNG `FILE`"},
	)
	for _, f := range query.Filters {
		flags = append(flags, &cli.StringFlag{Name: f, Usage: "only rows whose " + f + " is this"})
	}
	return &cli.Command{
		Name:        q.Name,
		Usage:       q.Purpose,
		Description: desc,
		Flags:       flags,
		Action: func(c *cli.Context) error {
			o, err := queryOptions(c)
			if err != nil {
				return cliutil.UsageError("query %s: %v", q.Name, err)
			}
			if _, err := query.Render(q.Name, o); err != nil { // usage mistakes before connecting
				return cliutil.UsageError("query %s: %v", q.Name, err)
			}
			conn, err := store.Open(c.Context, storeOptions(c))
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx := c.Context
			if isTerminal(c.App.Writer) {
				p := newProgress(c.App.ErrWriter, time.Now)
				ctx = clickhouse.Context(ctx, clickhouse.WithProgress(p.update))
				defer p.done()
			}
			t, err := query.Run(ctx, conn, q.Name, o)
			if err != nil {
				if query.IsUsage(err) {
					return cliutil.UsageError("query %s: %v", q.Name, err)
				}
				return err
			}
			if err := query.Write(c.App.Writer, t, c.String("format")); err != nil {
				return err
			}
			wrote, err := drawPictures(ctx, conn, q.Name, o, t, map[string]string{"svg": c.String("svg"), "png": c.String("png")})
			for _, f := range wrote {
				fmt.Fprintf(c.App.ErrWriter, "wrote %s\n", f)
			}
			return err
		},
	}
}

// queryOptions reads a named query's flags.
func queryOptions(c *cli.Context) (query.Options, error) {
	o := query.Options{Since: c.Duration("since"), Bucket: c.String("bucket"), Raw: c.Bool("raw"), Rollup: c.Bool("rollup")}
	if !validFormat(c.String("format")) {
		return o, fmt.Errorf("unknown --format %q: use %s", c.String("format"), strings.Join(query.Formats, ", "))
	}
	for _, end := range []struct {
		flag string
		t    *time.Time
	}{{"from", &o.From}, {"to", &o.To}} {
		if v := c.String(end.flag); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return o, fmt.Errorf("cannot read --%s %q: want RFC 3339, for example 2026-12-04T10:00:00Z", end.flag, v)
			}
			*end.t = t
		}
	}
	if c.IsSet("since") && c.IsSet("from") {
		return o, fmt.Errorf("give --since or --from, not both")
	}
	for _, d := range strings.Split(c.String("by"), ",") {
		if d = strings.TrimSpace(d); d != "" {
			o.By = append(o.By, d)
		}
	}
	for _, f := range query.Filters {
		if c.IsSet(f) {
			if o.Filters == nil {
				o.Filters = map[string]string{}
			}
			o.Filters[f] = c.String(f)
		}
	}
	return o, nil
}

func flagNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return "--" + strings.Join(names, ", --")
}

func validFormat(f string) bool {
	for _, v := range query.Formats {
		if f == v {
			return true
		}
	}
	return false
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress prints, once a query has run a second, the rows ClickHouse says
// it has read (its progress packets carry increments), on one line that
// done clears.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	start   time.Time
	rows    uint64
	printed bool
}

func newProgress(w io.Writer, now func() time.Time) *progress {
	return &progress{w: w, now: now, start: now()}
}

func (p *progress) update(pr *clickhouse.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows += pr.Rows
	if p.now().Sub(p.start) < time.Second {
		return
	}
	fmt.Fprintf(p.w, "\r%d rows read", p.rows)
	p.printed = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
