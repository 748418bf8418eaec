// Package store owns Meridian's ClickHouse side: connections, migrations,
// batched result writes and the agents table.
package store

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Options say which ClickHouse to use. Only the native protocol is used:
// clickhouse-go's HTTP mode fails on ClickHouse 18.16.
type Options struct {
	Addr     string // HOST:PORT of the native protocol (9000)
	Database string
	User     string
	Password string
	Cluster  string // migrate only: when set, migrations run on every node and tables are distributed
	// Replicated, with Cluster, makes migrations use Replicated* engines
	// (needs ZooKeeper or Keeper and {shard}/{replica} macros on the servers).
	Replicated bool
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// SessionSettings are the settings every connection sends with each query.
// clickhouse-go flags them important, so a server that does not know one
// refuses every query: each must be known to every server we support, from
// 18.16 to current releases (a test runs them as SET on both). Settings only
// an old server needs belong in that server's profile, not here; 18.16's
// allow_experimental_low_cardinality_type is in
// deploy/clickhouse/local-users.xml.
func SessionSettings() clickhouse.Settings {
	return clickhouse.Settings{
		// An INSERT into a Distributed table (on a cluster) returns only
		// once every shard has its rows, so an acknowledged batch is
		// stored, not queued on one node. No effect on other tables.
		// (Current servers call it distributed_foreground_insert and keep
		// this name as an alias; 18.16 knows only this one.)
		"insert_distributed_sync": 1,
	}
}

// Open connects to o.Database and checks the server answers.
func Open(ctx context.Context, o Options) (driver.Conn, error) {
	return open(ctx, o, o.Database)
}

func open(ctx context.Context, o Options, database string) (driver.Conn, error) {
	if !identRE.MatchString(o.Database) {
		return nil, fmt.Errorf("cannot use database name %q: use letters, digits and _ only", o.Database)
	}
	user := o.User
	if user == "" {
		user = "default"
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:            []string{o.Addr},
		Protocol:        clickhouse.Native,
		Auth:            clickhouse.Auth{Database: database, Username: user, Password: o.Password},
		Settings:        SessionSettings(),
		DialTimeout:     5 * time.Second,
		MaxOpenConns:    8,
		ConnMaxLifetime: time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse at %s: %w", o.Addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach ClickHouse at %s (database %s): %w; is it running? `meridian migrate` creates the database", o.Addr, database, err)
	}
	return conn, nil
}

// insert writes one row through a prepared batch. Plain `Exec("INSERT …
// VALUES (?)")` hangs against 18.16's native protocol; batches work on every
// version. The column list is always spelled out (18.16 sees 0 columns
// without it).
func insert(ctx context.Context, conn driver.Conn, table string, columns []string, values ...any) error {
	batch, err := conn.PrepareBatch(ctx, insertInto(table, columns, func(c string) string { return c }))
	if err != nil {
		return err
	}
	if err := batch.Append(values...); err != nil {
		batch.Abort()
		return err
	}
	return batch.Send()
}
