// Migrations: one schema for a single ClickHouse and for a cluster.
//
// Each file in migrations/ is NNNN_name.sql holding one statement, written as
// a text/template. What a template may use:
//
//	{{.DB}}                the database. {{.DB}}.x is the name the rest of the
//	                       code reads and writes: the table itself on a single
//	                       node, the Distributed table on a cluster.
//	{{.Table "x"}}         where rows of x are stored: {{.DB}}.x on a single
//	                       node, {{.DB}}.x_local (one per node) on a cluster.
//	                       Use it for the table a CREATE TABLE makes, and for
//	                       node-local sources and targets (a materialized view
//	                       reads {{.Table "results"}} and writes TO
//	                       {{.Table "results_1m"}}).
//	{{.Engine "E(args)"}}  the engine of the table named by the {{.Table}}
//	                       just before it. E unchanged, except with
//	                       Options.Replicated on a cluster, where a *MergeTree
//	                       E becomes ReplicatedE('/clickhouse/tables/{shard}/DB/x',
//	                       '{replica}', args); {shard} and {replica} are the
//	                       servers' <macros>.
//	{{.Alter "x"}}         for ALTER TABLE {{.Alter "x"}} ADD COLUMN …: the
//	                       table where rows of x are stored, as {{.Table}};
//	                       on a cluster Migrate repeats the ALTER on the
//	                       Distributed table x, whose columns must match.
//	{{.OnCluster}}         always empty (see below); kept so older templates
//	                       still render. Do not use it in new migrations.
//
// ADD COLUMN has no IF NOT EXISTS on 18.16, so Migrate skips an ADD COLUMN
// on a node whose table already has the column: a replica receives a
// Replicated table's ALTER from the replica that ran it.
//
// A migration whose template calls {{.Engine}} must carry a header line
//
//	-- shard-by: cityHash64(id)
//
// naming the sharding key (an integer expression over the table's columns).
// On a cluster, Migrate follows the CREATE with
//
//	CREATE TABLE IF NOT EXISTS DB.x AS DB.x_local
//	ENGINE = Distributed('CLUSTER', 'DB', 'x_local', KEY)
//
// so that INSERT INTO x and SELECT … FROM x FINAL work unchanged. FINAL runs
// per shard, so the key must send every row that a ReplacingMergeTree should
// fold (a replay of the same id) to the same shard: pick it from the ORDER BY.
// On a single node the header is ignored.
//
// DDL on a cluster is run by Migrate on every node listed for the cluster in
// system.clusters, not with ON CLUSTER: ON CLUSTER needs ZooKeeper
// (distributed_ddl), which ClickHouse 18.16 has no built-in replacement for,
// and the local test cluster runs without it. Running it ourselves works with
// and without ZooKeeper/Keeper, on every version, and reports errors per node.
// Statements must therefore be idempotent (IF NOT EXISTS) and correct when run
// on each replica: a Replicated table is created on each replica with the same
// path, which is how replication is set up anyway.
//
// schema_migrations is a plain local table on every node, written on each node
// once that node has applied the migration; it is never replicated nor
// distributed. A node thus records what its own local schema holds: a node
// added to the cluster later (or one that failed half-way) gets exactly the
// migrations it lacks on the next `meridian migrate --cluster`. Replicating
// it would make a new replica believe tables exist that were never created
// on it.

package store

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one schema step, applied once and recorded in schema_migrations.
type Migration struct {
	Version int
	Name    string
	SQL     string // a text/template; see the package comment of migrate.go
	ShardBy string // the "-- shard-by:" header, empty when absent
}

var shardByRE = regexp.MustCompile(`(?m)^--\s*shard-by:\s*(.+?)\s*$`)

// Migrations returns the embedded migrations in order. File names are
// NNNN_name.sql; each file holds one statement.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("cannot parse migration file name %q: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		m := Migration{Version: v, Name: name, SQL: string(b)}
		if hs := shardByRE.FindAllStringSubmatch(m.SQL, -1); len(hs) > 1 {
			return nil, fmt.Errorf("migration %s has %d shard-by headers: want at most one", name, len(hs))
		} else if len(hs) == 1 {
			m.ShardBy = hs[0][1]
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("two migrations have version %d: %s and %s", ms[i].Version, ms[i-1].Name, ms[i].Name)
		}
	}
	return ms, nil
}

// migrationData is what a migration template sees; see the package comment.
type migrationData struct {
	DB        string
	OnCluster string // always empty: DDL runs on each node, never ON CLUSTER

	cluster     string // empty on a single node
	replicated  bool
	lastTable   string // the last {{.Table}} argument
	engineTable string // the table {{.Engine}} was called for
	alterTable  string // the table {{.Alter}} was called for
}

// Table returns where rows of the named table are stored.
func (d *migrationData) Table(name string) (string, error) {
	if !identRE.MatchString(name) || strings.HasSuffix(name, localSuffix) {
		return "", fmt.Errorf("cannot use table name %q: use letters, digits and _ only, without %s", name, localSuffix)
	}
	d.lastTable = name
	return d.DB + "." + localName(d.cluster, name), nil
}

// Alter returns where rows of the named table are stored, for an ALTER
// that Statements repeats on the Distributed table on a cluster.
func (d *migrationData) Alter(name string) (string, error) {
	if d.alterTable != "" {
		return "", fmt.Errorf("{{.Alter}} is called twice: one table per migration")
	}
	t, err := d.Table(name)
	d.alterTable = name
	return t, err
}

// Engine returns the engine for the table named by the last {{.Table}}.
func (d *migrationData) Engine(engine string) (string, error) {
	if d.lastTable == "" {
		return "", fmt.Errorf(`{{.Engine %q}} needs the table's name first: write CREATE TABLE {{.Table "name"}}`, engine)
	}
	if d.engineTable != "" {
		return "", fmt.Errorf("{{.Engine}} is called twice: one table per migration")
	}
	d.engineTable = d.lastTable
	name, args, _ := strings.Cut(strings.TrimSpace(engine), "(")
	args = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(args), ")"))
	if d.cluster == "" || !d.replicated || !strings.HasSuffix(name, "MergeTree") || strings.HasPrefix(name, "Replicated") {
		return engine, nil
	}
	zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", d.DB, d.engineTable)
	if args != "" {
		zk += ", " + args
	}
	return "Replicated" + name + "(" + zk + ")", nil
}

const localSuffix = "_local"

func localName(cluster, table string) string {
	if cluster == "" {
		return table
	}
	return table + localSuffix
}

var clusterRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Statements renders m for o: the statements to run, in order, on a single
// node or on every node of o.Cluster.
func (m Migration) Statements(o Options) ([]string, error) {
	if o.Cluster != "" && !clusterRE.MatchString(o.Cluster) {
		return nil, fmt.Errorf("cannot use cluster name %q: use letters, digits, _ . and - only", o.Cluster)
	}
	d := &migrationData{DB: o.Database, cluster: o.Cluster, replicated: o.Replicated}
	t, err := template.New(m.Name).Option("missingkey=error").Parse(m.SQL)
	if err != nil {
		return nil, fmt.Errorf("cannot parse migration %s: %w", m.Name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("cannot render migration %s: %w", m.Name, err)
	}
	stmts := []string{b.String()}
	switch {
	case d.engineTable != "" && m.ShardBy == "":
		return nil, fmt.Errorf("migration %s creates table %s but has no \"-- shard-by: EXPR\" header: add one naming the sharding key for clusters", m.Name, d.engineTable)
	case d.engineTable == "" && m.ShardBy != "":
		return nil, fmt.Errorf("migration %s has a shard-by header but creates no table with {{.Engine}}", m.Name)
	case d.engineTable != "" && o.Cluster != "":
		x := d.engineTable
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s AS %s.%s ENGINE = Distributed('%s', '%s', '%s', %s)",
			d.DB, x, d.DB, x+localSuffix, o.Cluster, d.DB, x+localSuffix, m.ShardBy))
	case d.alterTable != "" && o.Cluster != "":
		local := d.DB + "." + d.alterTable + localSuffix
		stmts = append(stmts, strings.Replace(stmts[0], local, d.DB+"."+d.alterTable, 1))
	}
	return stmts, nil
}

// node is one server Migrate changes, with the migrations it has.
type node struct {
	addr string
	conn driver.Conn
	done map[int]bool
}

// Migrate creates the database if needed and applies, in order, every
// migration not yet recorded. It is safe to run again; logf reports each step.
// With o.Cluster it does so on every node of the cluster (see the package
// comment of migrate.go); applied counts migrations applied on any node.
func Migrate(ctx context.Context, o Options, logf func(format string, args ...any)) (applied int, err error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Replicated && o.Cluster == "" {
		return 0, fmt.Errorf("cannot use replicated engines without a cluster: give --cluster NAME too")
	}
	ms, err := Migrations()
	if err != nil {
		return 0, err
	}
	stmts := make([][]string, len(ms))
	for i, m := range ms { // render everything before touching any server
		if stmts[i], err = m.Statements(o); err != nil {
			return 0, err
		}
	}
	nodes, err := migrationNodes(ctx, o)
	for _, n := range nodes {
		defer n.conn.Close()
	}
	if err != nil {
		return 0, err
	}
	for _, n := range nodes {
		if err := prepareNode(ctx, o, n); err != nil {
			return 0, err
		}
	}
	// The most migrated node goes first: a Replicated table's structure
	// lives in ZooKeeper/Keeper, so a new replica's CREATE (which holds
	// every column, later ADD COLUMNs included) must find the columns the
	// ALTERs put there already.
	sort.SliceStable(nodes, func(a, b int) bool { return len(nodes[a].done) > len(nodes[b].done) })
	did := map[int]bool{}
	for _, n := range nodes {
		for i, m := range ms {
			if n.done[m.Version] {
				continue
			}
			if err := applyOn(ctx, o, n, m, stmts[i]); err != nil {
				return len(did), err
			}
			did[m.Version] = true
			logf("applied migration %s%s", m.Name, n.where(o))
		}
	}
	return len(did), nil
}

func (n *node) where(o Options) string {
	if o.Cluster == "" {
		return ""
	}
	return " on " + n.addr
}

// applyOn runs one migration's statements on n and records it there.
func applyOn(ctx context.Context, o Options, n *node, m Migration, stmts []string) error {
	for _, s := range stmts {
		if has, err := hasAddedColumn(ctx, n.conn, s); err != nil {
			return fmt.Errorf("cannot apply migration %s%s: %w", m.Name, n.where(o), err)
		} else if has {
			continue
		}
		if err := n.conn.Exec(ctx, s); err != nil {
			if has, _ := hasAddedColumn(ctx, n.conn, s); has {
				continue // another replica's ALTER arrived meanwhile
			}
			return fmt.Errorf("cannot apply migration %s%s: %w", m.Name, n.where(o), err)
		}
	}
	if err := insert(ctx, n.conn, o.Database+".schema_migrations", []string{"version", "name", "applied_at"},
		uint32(m.Version), m.Name, time.Now()); err != nil {
		return fmt.Errorf("cannot record migration %s%s: %w", m.Name, n.where(o), err)
	}
	return nil
}

var addColumnRE = regexp.MustCompile(`^\s*ALTER TABLE ([A-Za-z0-9_]+)\.([A-Za-z0-9_]+) ADD COLUMN ([A-Za-z0-9_]+) `)

// AddedColumn says whether stmt (a rendered migration) is an ADD COLUMN,
// and of which column. Whoever applies migrations skips it where the table
// has the column already (see the package comment); Migrate does.
func AddedColumn(stmt string) (db, table, column string, ok bool) {
	m := addColumnRE.FindStringSubmatch(stripComments(stmt))
	if m == nil {
		return "", "", "", false
	}
	return m[1], m[2], m[3], true
}

// hasAddedColumn says whether stmt is an ADD COLUMN whose column the table
// already has on the server conn talks to.
func hasAddedColumn(ctx context.Context, conn driver.Conn, stmt string) (bool, error) {
	db, table, column, ok := AddedColumn(stmt)
	if !ok {
		return false, nil
	}
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?", db, table, column).Scan(&n)
	return n > 0, err
}

// stripComments drops the -- comment lines a migration starts with.
func stripComments(stmt string) string {
	var b strings.Builder
	for _, line := range strings.Split(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// migrationNodes connects to o.Addr or, with o.Cluster, to every node the
// server at o.Addr lists for that cluster. The caller closes what it gets,
// even with an error.
func migrationNodes(ctx context.Context, o Options) ([]*node, error) {
	first, err := open(ctx, o, "default")
	if err != nil {
		return nil, err
	}
	nodes := []*node{{addr: o.Addr, conn: first}}
	if o.Cluster == "" {
		return nodes, nil
	}
	rows, err := first.Query(ctx, "SELECT host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", o.Cluster)
	if err != nil {
		return nodes, fmt.Errorf("cannot read cluster %s from system.clusters at %s: %w", o.Cluster, o.Addr, err)
	}
	var addrs []string
	for rows.Next() {
		var host string
		var port uint16
		if err := rows.Scan(&host, &port); err != nil {
			rows.Close()
			return nodes, err
		}
		addrs = append(addrs, fmt.Sprintf("%s:%d", host, port))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nodes, err
	}
	if len(addrs) == 0 {
		return nodes, fmt.Errorf("cluster %q: the server at %s has no such cluster in <remote_servers> (see system.clusters)", o.Cluster, o.Addr)
	}
	first.Close()
	nodes = nodes[:0]
	for _, a := range addrs {
		no := o
		no.Addr = a
		c, err := open(ctx, no, "default")
		if err != nil {
			return nodes, fmt.Errorf("cannot migrate cluster %s: node %s: %w", o.Cluster, a, err)
		}
		nodes = append(nodes, &node{addr: a, conn: c})
	}
	return nodes, nil
}

// SetupStatements create the database and the table recording which
// migrations it has; Migrate runs them before any migration.
func SetupStatements(database string) []string {
	return []string{
		"CREATE DATABASE IF NOT EXISTS " + database,
		"CREATE TABLE IF NOT EXISTS " + database + ".schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version",
	}
}

// prepareNode creates the database and schema_migrations on n, checks that
// the database was made for the same layout (single node or cluster), and
// reads which migrations n has.
func prepareNode(ctx context.Context, o Options, n *node) error {
	db := o.Database
	for _, stmt := range SetupStatements(db) {
		if err := n.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("cannot prepare database %s on %s: %w", db, n.addr, err)
		}
	}
	if err := checkLayout(ctx, o, n); err != nil {
		return err
	}
	n.done = map[int]bool{}
	rows, err := n.conn.Query(ctx, "SELECT version FROM "+db+".schema_migrations")
	if err != nil {
		return fmt.Errorf("cannot read applied migrations on %s: %w", n.addr, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return err
		}
		n.done[int(v)] = true
	}
	return rows.Err()
}

// checkLayout refuses to migrate with --cluster a database made without it,
// and the reverse: schema_migrations would say "done" for tables that have
// the wrong shape.
func checkLayout(ctx context.Context, o Options, n *node) error {
	rows, err := n.conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? AND name != 'schema_migrations' AND NOT startsWith(name, '.')", o.Database)
	if err != nil {
		return fmt.Errorf("cannot list tables of %s on %s: %w", o.Database, n.addr, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return err
		}
		switch {
		case o.Cluster == "" && engine == "Distributed":
			return fmt.Errorf("cannot migrate database %s on %s without --cluster: table %s is Distributed, so the database was made with `meridian migrate --cluster`", o.Database, n.addr, name)
		case o.Cluster != "" && strings.HasSuffix(engine, "MergeTree") && !strings.HasSuffix(name, localSuffix):
			return fmt.Errorf("cannot migrate database %s on %s with --cluster %s: table %s is a local %s table, so the database was made without --cluster (or a migration names a table without {{.Table}})", o.Database, n.addr, o.Cluster, name, engine)
		}
	}
	return rows.Err()
}

// DropDatabase drops database on the server conn talks to, and with it every
// table's replica metadata in ZooKeeper/Keeper, at once: on servers whose
// databases are Atomic (the default from 20.10) it says SYNC, else the drop
// is delayed (database_atomic_delay_before_drop_table_sec, 8 minutes by
// default) and re-creating a Replicated table there fails with
// REPLICA_ALREADY_EXISTS until it is done. 18.16 knows no SYNC and drops at
// once anyway. This is step one of rebuilding a replica (README).
func DropDatabase(ctx context.Context, conn driver.Conn, database string) error {
	if !identRE.MatchString(database) {
		return fmt.Errorf("cannot drop database %q: use letters, digits and _ only", database)
	}
	v, err := conn.ServerVersion()
	if err != nil {
		return fmt.Errorf("cannot drop database %s: %w", database, err)
	}
	return conn.Exec(ctx, dropDatabaseSQL(database, v.Version.Major, v.Version.Minor))
}

func dropDatabaseSQL(database string, major, minor uint64) string {
	sql := "DROP DATABASE IF EXISTS " + database
	if major > 20 || major == 20 && minor >= 10 {
		sql += " SYNC"
	}
	return sql
}
