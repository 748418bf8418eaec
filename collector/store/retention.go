package store

import (
	"context"
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
	"rollups":    {"results_1m", "rum_pageviews_1m"},
	"heartbeats": {"agent_heartbeats"},
}

// RetentionGroups lists RetentionTables' keys in a stable order.
var RetentionGroups = []string{"results", "beacons", "rollups", "heartbeats"}

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
	Table string
	Day   time.Time // the partition's date
	ID    string    // partition_id, YYYYMMDD
	Rows  uint64
	Bytes uint64
}

func (d DroppedPartition) String() string {
	return fmt.Sprintf("%s %s (%d rows, %d bytes)", d.Table, d.Day.Format(time.DateOnly), d.Rows, d.Bytes)
}

var partitionIDRE = regexp.MustCompile(`^[0-9]{8}$`)

// ApplyRetention drops, table by table, the day partitions older than each
// group's window, and returns what it dropped (in table, day order). The
// only value put in SQL text besides fixed table names is a partition id
// read from system.parts and checked to be a date (YYYYMMDD); everything
// else is a bound parameter. Tables that do not exist are skipped.
func ApplyRetention(ctx context.Context, conn driver.Conn, database string, o RetentionOptions) ([]DroppedPartition, error) {
	if !identRE.MatchString(database) {
		return nil, fmt.Errorf("cannot apply retention to database %q: use letters, digits and _ only", database)
	}
	var today time.Time
	if err := conn.QueryRow(ctx, "SELECT today()").Scan(&today); err != nil {
		return nil, fmt.Errorf("cannot read the server's date: %w", err)
	}
	today = time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	var dropped []DroppedPartition
	for _, g := range RetentionGroups {
		days := o.Days[g]
		if days <= 0 {
			continue
		}
		cutoff := today.AddDate(0, 0, -days)
		for _, table := range RetentionTables[g] {
			parts, err := oldPartitions(ctx, conn, database, table, cutoff)
			if err != nil {
				return dropped, err
			}
			for _, p := range parts {
				if !o.DryRun {
					// p.ID matched partitionIDRE and parsed as a date.
					sql := "ALTER TABLE " + database + "." + table + " DROP PARTITION ID '" + p.ID + "'"
					if err := conn.Exec(ctx, sql); err != nil {
						return dropped, fmt.Errorf("cannot drop partition %s of %s.%s: %w", p.ID, database, table, err)
					}
				}
				dropped = append(dropped, p)
			}
		}
	}
	return dropped, nil
}

// oldPartitions lists table's active day partitions before cutoff.
func oldPartitions(ctx context.Context, conn driver.Conn, database, table string, cutoff time.Time) ([]DroppedPartition, error) {
	rows, err := conn.Query(ctx, `SELECT partition_id, sum(rows), sum(bytes_on_disk)
FROM system.parts
WHERE database = ? AND table = ? AND active
GROUP BY partition_id
ORDER BY partition_id`, database, table)
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
