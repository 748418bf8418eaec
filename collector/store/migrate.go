package store

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one schema step, applied once and recorded in schema_migrations.
type Migration struct {
	Version int
	Name    string
	SQL     string // a text/template; see migrationData
}

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
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("two migrations have version %d: %s and %s", ms[i].Version, ms[i-1].Name, ms[i].Name)
		}
	}
	return ms, nil
}

// migrationData is what a migration template sees.
type migrationData struct {
	DB        string
	OnCluster string
}

// Engine returns the table engine to use. One place to switch to
// Replicated* engines when migrations run on a cluster.
func (d migrationData) Engine(engine string) string { return engine }

func render(m Migration, d migrationData) (string, error) {
	t, err := template.New(m.Name).Option("missingkey=error").Parse(m.SQL)
	if err != nil {
		return "", fmt.Errorf("cannot parse migration %s: %w", m.Name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("cannot render migration %s: %w", m.Name, err)
	}
	return b.String(), nil
}

// Migrate creates the database if needed and applies, in order, every
// migration not yet recorded. It is safe to run again; logf reports each step.
func Migrate(ctx context.Context, o Options, logf func(format string, args ...any)) (applied int, err error) {
	if o.Cluster != "" {
		return 0, fmt.Errorf("cannot migrate on cluster %q: cluster schemas are not supported yet; migrate each node without --cluster", o.Cluster)
	}
	ms, err := Migrations()
	if err != nil {
		return 0, err
	}
	conn, err := open(ctx, o, "default")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	d := migrationData{DB: o.Database}
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS " + d.DB,
		"CREATE TABLE IF NOT EXISTS " + d.DB + ".schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version",
	} {
		if err := conn.Exec(ctx, stmt); err != nil {
			return 0, fmt.Errorf("cannot prepare database %s: %w", d.DB, err)
		}
	}
	done := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+d.DB+".schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("cannot read applied migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, err
		}
		done[int(v)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		sql, err := render(m, d)
		if err != nil {
			return applied, err
		}
		if err := conn.Exec(ctx, sql); err != nil {
			return applied, fmt.Errorf("cannot apply migration %s: %w", m.Name, err)
		}
		if err := insert(ctx, conn, d.DB+".schema_migrations", []string{"version", "name", "applied_at"},
			uint32(m.Version), m.Name, time.Now()); err != nil {
			return applied, fmt.Errorf("cannot record migration %s: %w", m.Name, err)
		}
		applied++
		if logf != nil {
			logf("applied migration %s", m.Name)
		}
	}
	return applied, nil
}
