package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
)

// retentionDefaults are the windows `retention apply` and `serve
// --retention-every` use unless told otherwise.
var retentionDefaults = map[string]string{"results": "30d", "beacons": "30d", "rollups": "400d", "heartbeats": "30d", "steering": "90d"}

var retentionUsage = map[string]string{
	"results":    "keep probe results (results) this long: whole days such as 30d, or off",
	"beacons":    "keep RUM beacons (rum_pageviews, rum_cdn) this long, or off",
	"rollups":    "keep the per-minute rollups (results_1m, rum_pageviews_1m, rum_cdn_1m, results_member_1m) this long, or off",
	"heartbeats": "keep agent heartbeats this long, or off",
	"steering":   "keep published steering decisions and router pushes this long, or off",
}

// retentionFlags are the windows, named prefix+group (serve prefixes them
// with "retention-"), and --cluster, unprefixed: the same name and value as
// `migrate --cluster`.
func retentionFlags(prefix string) []cli.Flag {
	var fs []cli.Flag
	for _, g := range store.RetentionGroups {
		fs = append(fs, &cli.StringFlag{Name: prefix + g, Value: retentionDefaults[g], Usage: retentionUsage[g]})
	}
	return append(fs, &cli.StringFlag{Name: "cluster", Usage: "for a database made with migrate --cluster: retention drops old partitions from the X_local tables " +
		"of every node of cluster `NAME` (nodes read from system.clusters on --clickhouse); without it, from the tables of the --clickhouse server only"})
}

// retentionStoreOptions are where retention runs: the --clickhouse server,
// or every node of --cluster.
func retentionStoreOptions(c *cli.Context) store.Options {
	o := storeOptions(c)
	o.Cluster = c.String("cluster")
	return o
}

// retain runs one retention pass: on the server conn talks to or, when
// o.Cluster is set, on each node of the cluster (conn is then unused: each
// node gets its own connection for the pass). The cluster is named rather
// than guessed from the Distributed tables, as for migrate; ApplyRetention
// refuses a cluster database, so forgetting --cluster fails loudly.
func retain(ctx context.Context, conn driver.Conn, o store.Options, ro store.RetentionOptions) ([]store.DroppedPartition, error) {
	if o.Cluster != "" {
		return store.ApplyClusterRetention(ctx, o, ro)
	}
	return store.ApplyRetention(ctx, conn, o.Database, ro)
}

func retentionDays(c *cli.Context, cmd, prefix string) (map[string]int, error) {
	days := map[string]int{}
	for _, g := range store.RetentionGroups {
		d, err := store.ParseRetention(c.String(prefix + g))
		if err != nil {
			return nil, cliutil.UsageError("%s: --%s%s: %v", cmd, prefix, g, err)
		}
		days[g] = d
	}
	return days, nil
}

func retentionCommand() *cli.Command {
	return &cli.Command{
		Name:  "retention",
		Usage: "drop day partitions older than each table's retention window",
		Subcommands: []*cli.Command{{
			Name:  "apply",
			Usage: "drop (or with --dry-run list) the day partitions past their window; prints each one",
			Description: "On a database made with `meridian migrate --cluster NAME`, give --cluster NAME too: the rows live in\n" +
				"each node's X_local tables (the tables X are Distributed and have no partitions), so retention reads\n" +
				"system.parts and drops partitions on every node of the cluster, as listed in system.clusters.",
			Flags: append(append(clickhouseFlags(), retentionFlags("")...),
				&cli.BoolFlag{Name: "dry-run", Usage: "list what would be dropped, drop nothing"}),
			Action: func(c *cli.Context) error {
				days, err := retentionDays(c, "retention apply", "")
				if err != nil {
					return err
				}
				o := retentionStoreOptions(c)
				var conn driver.Conn
				if o.Cluster == "" {
					if conn, err = store.Open(c.Context, o); err != nil {
						return err
					}
					defer conn.Close()
				}
				_, err = applyRetention(c.Context, conn, o, days, c.Bool("dry-run"), c.App.Writer)
				return err
			},
		}},
	}
}

// applyRetention runs one pass and prints a line per partition dropped.
func applyRetention(ctx context.Context, conn driver.Conn, o store.Options, days map[string]int, dryRun bool, w io.Writer) (int, error) {
	db := o.Database
	dropped, err := retain(ctx, conn, o, store.RetentionOptions{Days: days, DryRun: dryRun})
	verb := "dropped"
	if dryRun {
		verb = "would drop"
	}
	for _, d := range dropped {
		fmt.Fprintf(w, "%s %s.%s\n", verb, db, d)
	}
	if err != nil {
		return len(dropped), fmt.Errorf("cannot apply retention: %w", err)
	}
	if len(dropped) == 0 && o.Cluster == "" {
		fmt.Fprintf(w, "nothing to drop in %s\n", db)
	} else if len(dropped) == 0 {
		fmt.Fprintf(w, "nothing to drop in %s on cluster %s\n", db, o.Cluster)
	}
	return len(dropped), nil
}

// retentionLoop applies retention every interval until ctx ends (serve
// --retention-every), on o's server through conn or, with o.Cluster, on
// every node of the cluster; failures are logged and retried at the next
// tick.
func retentionLoop(ctx context.Context, conn driver.Conn, o store.Options, days map[string]int, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		dropped, err := retain(ctx, conn, o, store.RetentionOptions{Days: days})
		for _, d := range dropped {
			attrs := []any{"table", d.Table, "day", d.Day.Format(time.DateOnly), "rows", d.Rows}
			if d.Node != "" {
				attrs = append(attrs, "node", d.Node)
			}
			logger.Info("retention: dropped partition", attrs...)
		}
		if err != nil && ctx.Err() == nil {
			logger.Warn("retention failed; retrying at the next tick", "err", err, "every", every)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
