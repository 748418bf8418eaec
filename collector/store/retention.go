package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Retention groups: each names the tables whose day partitions (PARTITION BY
// toDate(…)) it keeps for one window.
var RetentionTables = map[string][]string{
	"results":    {"results"},
	"beacons":    {"rum_pageviews", "rum_cdn"},
	"rollups":    {"results_1m", "rum_pageviews_1m", "rum_cdn_1m", "results_member_1m", "rum_cdn_1h", "results_member_1h"},
	"heartbeats": {"agent_heartbeats"},
	"steering":   {"steering_history", "steering_pushes"},
}

// RetentionGroups lists RetentionTables' keys in a stable order.
var RetentionGroups = []string{"results", "beacons", "rollups", "heartbeats", "steering"}

// RetentionOptions say how long each group of tables keeps its data.
type RetentionOptions struct {
	// Days per RetentionTables group; a group that is missing or 0 keeps
	// everything. A partition is dropped once its whole day is older than
	// the window: day < today - Days (today on the server's clock).
	Days   map[string]int
	DryRun bool // list what would be dropped, drop nothing
}

// DroppedPartition is one day partition removed (or, on a dry run, that
// would be).
type DroppedPartition struct {
	Node  string    // HOST:PORT of the node it was on, on a cluster; empty on a single node
	Table string    // the table it was in: X on a single node, X_local on a cluster
	Day   time.Time // the partition's date
	ID    string    // partition_id, YYYYMMDD
	Rows  uint64
	Bytes uint64
}

func (d DroppedPartition) String() string {
	s := fmt.Sprintf("%s %s (%d rows, %d bytes)", d.Table, d.Day.Format(time.DateOnly), d.Rows, d.Bytes)
	if d.Node != "" {
		s += " on " + d.Node
	}
	return s
}

var partitionIDRE = regexp.MustCompile(`^[0-9]{8}$`)

// ApplyRetention drops, table by table, the day partitions older than each
// group's window on the one server conn talks to, and returns what it
// dropped (in table, day order). The only value put in SQL text besides
// fixed table names is a partition id read from system.parts and checked to
// be a date (YYYYMMDD); everything else is a bound parameter. Tables that do
// not exist are skipped.
//
// A database made with `meridian migrate --cluster` keeps its rows in each
// node's X_local tables, behind Distributed tables X that have no partitions
// of their own: ApplyRetention refuses it (rather than drop nothing) and
// ApplyClusterRetention is the one to use.
func ApplyRetention(ctx context.Context, conn driver.Conn, database string, o RetentionOptions) ([]DroppedPartition, error) {
	if !identRE.MatchString(database) {
		return nil, fmt.Errorf("cannot apply retention to database %q: use letters, digits and _ only", database)
	}
	return retainNode(ctx, conn, database, "", "", o)
}

// ApplyClusterRetention applies retention to a database migrated with
// `meridian migrate --cluster co.Cluster`: it reaches the nodes the way
// Migrate does (the server at co.Addr lists them in system.clusters, and
// each gets its own connection) and, on each node in turn, reads that
// node's system.parts and drops the old day partitions of its X_local
// tables (its own rows) with ApplyRetention's rules and today() on that
// node's clock. With Replicated engines every replica is visited too;
// dropping a partition on one replica drops it on the others, so a later
// replica usually finds nothing left to drop.
//
// A node that fails does not stop the others: their partitions are dropped
// and the errors are returned together, each naming its node. A node that
// cannot be reached stops the whole pass before anything is dropped.
func ApplyClusterRetention(ctx context.Context, co Options, o RetentionOptions) ([]DroppedPartition, error) {
	if !identRE.MatchString(co.Database) {
		return nil, fmt.Errorf("cannot apply retention to database %q: use letters, digits and _ only", co.Database)
	}
	if !clusterRE.MatchString(co.Cluster) {
		return nil, fmt.Errorf("cannot apply retention on cluster %q: use letters, digits, _ . and - only", co.Cluster)
	}
	nodes, err := migrationNodes(ctx, co)
	for _, n := range nodes {
		defer n.conn.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the nodes of cluster %s: %w", co.Cluster, err)
	}
	var dropped []DroppedPartition
	var errs []error
	for _, n := range nodes {
		d, err := retainNode(ctx, n.conn, co.Database, co.Cluster, n.addr, o)
		dropped = append(dropped, d...)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.addr, err))
		}
	}
	return dropped, errors.Join(errs...)
}

// retainNode is one retention pass over the server conn talks to: over the
// tables themselves when cluster is empty, else over their X_local tables.
// addr labels what it drops.
func retainNode(ctx context.Context, conn driver.Conn, database, cluster, addr string, o RetentionOptions) ([]DroppedPartition, error) {
	var today time.Time
	if err := conn.QueryRow(ctx, sqlToday).Scan(&today); err != nil {
		return nil, fmt.Errorf("cannot read the server's date: %w", err)
	}
	today = time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	engines, err := tableEngines(ctx, conn, database)
	if err != nil {
		return nil, err
	}
	var dropped []DroppedPartition
	for _, g := range RetentionGroups {
		days := o.Days[g]
		if days <= 0 {
			continue
		}
		cutoff := today.AddDate(0, 0, -days)
		for _, base := range RetentionTables[g] {
			table := localName(cluster, base)
			if err := checkRetentionLayout(database, cluster, base, engines); err != nil {
				return dropped, err
			}
			if engines[table] == "" {
				continue // not created (yet): nothing to keep short
			}
			parts, err := oldPartitions(ctx, conn, database, table, cutoff)
			if err != nil {
				return dropped, err
			}
			for _, p := range parts {
				p.Node = addr
				if !o.DryRun {
					// p.ID matched partitionIDRE and parsed as a date.
					if err := conn.Exec(ctx, dropPartitionSQL(database, table, p.ID)); err != nil {
						return dropped, fmt.Errorf("cannot drop partition %s of %s.%s: %w", p.ID, database, table, err)
					}
				}
				dropped = append(dropped, p)
			}
		}
	}
	return dropped, nil
}

// The statements retention sends (tested on both engines).
const (
	sqlToday        = "SELECT today()"
	sqlTableEngines = "SELECT name, engine FROM system.tables WHERE database = ?"
	sqlPartitions   = `SELECT partition_id, sum(rows), sum(bytes_on_disk)
FROM system.parts
WHERE database = ? AND table = ? AND active
GROUP BY partition_id
ORDER BY partition_id`
)

// dropPartitionSQL drops one day partition; id has matched partitionIDRE.
func dropPartitionSQL(database, table, id string) string {
	return "ALTER TABLE " + database + "." + table + " DROP PARTITION ID '" + id + "'"
}

// tableEngines maps the names of database's tables to their engines.
func tableEngines(ctx context.Context, conn driver.Conn, database string) (map[string]string, error) {
	rows, err := conn.Query(ctx, sqlTableEngines, database)
	if err != nil {
		return nil, fmt.Errorf("cannot list the tables of %s: %w", database, err)
	}
	defer rows.Close()
	engines := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return nil, fmt.Errorf("cannot list the tables of %s: %w", database, err)
		}
		engines[name] = engine
	}
	return engines, rows.Err()
}

// checkRetentionLayout refuses a database whose layout (single node or
// cluster) is not the one retention was asked for: otherwise it would find
// no partitions (those of a Distributed table, or of X_local tables that do
// not exist) and silently keep everything.
func checkRetentionLayout(database, cluster, base string, engines map[string]string) error {
	switch {
	case cluster == "" && engines[base] == "Distributed":
		return fmt.Errorf("cannot apply retention to %s.%s: it is a Distributed table, so the database was made with `meridian migrate --cluster NAME`; give retention that cluster (meridian retention apply --cluster NAME)", database, base)
	case cluster != "" && engines[base+localSuffix] == "" && strings.HasSuffix(engines[base], "MergeTree"):
		return fmt.Errorf("cannot apply retention on cluster %s to %s.%s: it is a local %s table with no %s%s, so the database was made without --cluster; apply retention without one", cluster, database, base, engines[base], base, localSuffix)
	}
	return nil
}

// oldPartitions lists table's active day partitions before cutoff.
func oldPartitions(ctx context.Context, conn driver.Conn, database, table string, cutoff time.Time) ([]DroppedPartition, error) {
	rows, err := conn.Query(ctx, sqlPartitions, database, table)
	if err != nil {
		return nil, fmt.Errorf("cannot list partitions of %s.%s: %w", database, table, err)
	}
	defer rows.Close()
	var out []DroppedPartition
	for rows.Next() {
		p := DroppedPartition{Table: table}
		if err := rows.Scan(&p.ID, &p.Rows, &p.Bytes); err != nil {
			return nil, fmt.Errorf("cannot read partitions of %s.%s: %w", database, table, err)
		}
		if !partitionIDRE.MatchString(p.ID) {
			return nil, fmt.Errorf("cannot apply retention to %s.%s: partition %q is not a day (want PARTITION BY toDate(ts))", database, table, p.ID)
		}
		day, err := time.Parse("20060102", p.ID)
		if err != nil {
			return nil, fmt.Errorf("cannot apply retention to %s.%s: partition %q is not a date", database, table, p.ID)
		}
		if p.Day = day; day.Before(cutoff) {
			out = append(out, p)
		}
	}
	return out, rows.Err()
}

// ParseRetention reads a retention window: whole days as "30d", a Go
// duration that is a whole number of days ("720h"), or "0"/"off" to keep
// everything (0 days).
func ParseRetention(s string) (days int, err error) {
	s = strings.TrimSpace(s)
	switch s {
	case "0", "off", "forever":
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 1 || d > 100000 {
			return 0, fmt.Errorf("retention %q: want whole days such as 30d, or off", s)
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%(24*time.Hour) != 0 {
		return 0, fmt.Errorf("retention %q: want whole days such as 30d (partitions are days), or off", s)
	}
	return int(d / (24 * time.Hour)), nil
}
