package main

import (
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/query"
)

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:  "query",
		Usage: "run a named query over stored results",
		Subcommands: []*cli.Command{{
			Name:  "latency",
			Usage: "total-time quantiles (p50/p95/p99) and failures per group",
			Flags: append(clickhouseFlags(),
				&cli.DurationFlag{Name: "since", Value: time.Hour, Usage: "look back this far"},
				&cli.StringFlag{Name: "by", Value: "region,target", Usage: "group by these comma-separated dimensions"},
				&cli.StringFlag{Name: "kind", Usage: "only results of this kind (http, dns, …)"},
				&cli.StringFlag{Name: "format", Value: "table", Usage: "table, csv or json"},
				&cli.BoolFlag{Name: "rollup", Usage: "read the per-minute rollup (fast over long windows; whole minutes; by region, target, check or kind; a replayed result counts again) instead of the exact raw results"},
			),
			Action: func(c *cli.Context) error {
				if !validFormat(c.String("format")) {
					return cliutil.UsageError("query latency: unknown --format %q: use %s", c.String("format"), strings.Join(query.Formats, ", "))
				}
				dims := query.Dimensions
				if c.Bool("rollup") {
					dims = query.RollupDimensions
				}
				var by []string
				for _, d := range strings.Split(c.String("by"), ",") {
					if d = strings.TrimSpace(d); d != "" {
						if _, ok := dims[d]; !ok {
							return cliutil.UsageError("query latency: cannot group by %q: use %s", d, dimensionList(dims))
						}
						by = append(by, d)
					}
				}
				conn, err := store.Open(c.Context, storeOptions(c))
				if err != nil {
					return err
				}
				defer conn.Close()
				t, err := query.Latency(c.Context, conn, query.LatencyOptions{Since: c.Duration("since"), By: by, Kind: c.String("kind"), Rollup: c.Bool("rollup")})
				if err != nil {
					return err
				}
				return query.Write(c.App.Writer, t, c.String("format"))
			},
		}},
	}
}

func validFormat(f string) bool {
	for _, v := range query.Formats {
		if f == v {
			return true
		}
	}
	return false
}

func dimensionList(dims map[string]string) string {
	var names []string
	for k := range dims {
		names = append(names, k)
	}
	return strings.Join(sortedStrings(names), ", ")
}
