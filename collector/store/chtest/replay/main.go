// Command replay runs, on ClickHouse 26.x in-process (chDB), every distinct
// statement that clickhouse-go sent to the 18.16 test server during `make
// test` (its system.query_log), against a database migrated alike, and
// fails naming each statement the current engine refuses. The tests check
// answers for the statements they know; this catches the rest: any SQL the
// product sends, written later by anyone, without a list to keep.
//
//	replay HTTP_ADDR     (the 18.16 server's HTTP interface; CHDB_LIB_PATH names libchdb.so)
//
// Test databases (chtest's test_ and 12 hex digits, e2e's e2e_…NNN) become
// one database, ref, with
// empty tables: a statement is checked for what the server accepts (names,
// types, functions, settings, syntax), not for its answer. INSERTs are
// replayed with their column list and no rows. CREATE/DROP DATABASE,
// RENAME and SYSTEM statements are left out: the product sends none of them
// on a single node (DropDatabase has its own test on both engines); tests
// use them for scaffolding.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/chdb-io/chdb-go/chdb"

	"github.com/meridian-net/meridian/collector/store"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "replay:", err)
		os.Exit(1)
	}
}

var (
	testDB  = regexp.MustCompile(`\b(?:test_[0-9a-f]{12}|e2e_[a-z_]*[0-9]{6,})\w*`)
	digits  = regexp.MustCompile(`[0-9]+`)
	strLit  = regexp.MustCompile(`'(?:[^'\\]|\\.)*'`)
	skipped = regexp.MustCompile(`(?i)^\s*(CREATE DATABASE|DROP DATABASE|RENAME|SYSTEM|SHOW|EXISTS|USE)\b`)
	insert  = regexp.MustCompile(`(?is)^\s*INSERT INTO\s+(\S+)\s*\((.*)\)\s*(?:VALUES|FORMAT\s+\w+)\s*$`)
)

func run(args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: replay HTTP_ADDR (with CHDB_LIB_PATH naming libchdb.so)")
	}
	logged, err := loggedStatements(args[0])
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "meridian-replay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := chdb.NewSession(dir)
	if err != nil {
		return fmt.Errorf("cannot start chDB: %w", err)
	}
	defer s.Close()
	exec := func(sql string) (string, error) {
		r, err := s.Query(sql, "TabSeparated")
		if err != nil || r == nil {
			return "", err
		}
		defer r.Free()
		return string(r.Buf()), nil
	}
	version, err := exec("SELECT version()")
	if err != nil {
		return err
	}
	version = strings.TrimSpace(version)
	if err := migrate(exec); err != nil {
		return fmt.Errorf("ClickHouse %s: %w", version, err)
	}

	seen := map[string]bool{}
	var refused []attempt
	distinct := 0
	for _, q := range logged {
		q = testDB.ReplaceAllString(q, "ref")
		if skipped.MatchString(q) {
			continue
		}
		if m := insert.FindStringSubmatch(q); m != nil {
			// The rows went in the native protocol's blocks; the same columns
			// from the table itself check names and types.
			q = fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s LIMIT 0", m[1], m[2], m[2], m[1])
		}
		key := digits.ReplaceAllString(strLit.ReplaceAllString(q, "''"), "0")
		if seen[key] {
			continue
		}
		seen[key] = true
		distinct++
		if _, err := exec(q); err != nil {
			refused = append(refused, attempt{q, err})
		}
	}
	refused = retry(exec, refused)
	fmt.Fprintf(out, "replayed %d distinct statements (of %d that clickhouse-go sent to 18.16) on ClickHouse %s: %d refused\n", distinct, len(logged), version, len(refused))
	for _, r := range refused {
		msg, _, _ := strings.Cut(r.err.Error(), "\n")
		fmt.Fprintf(out, "refused: %s\n    %s\n", msg, strings.ReplaceAll(strings.TrimSpace(r.q), "\n", "\n    "))
	}
	if len(refused) > 0 {
		return fmt.Errorf("ClickHouse %s refuses %d statements the product sends (above); fix them for both engines", version, len(refused))
	}
	if distinct == 0 {
		return fmt.Errorf("the 18.16 server's query_log holds no statements from clickhouse-go: is log_queries on (deploy/clickhouse/local-users.xml)?")
	}
	return nil
}

// attempt is a statement the engine refused, and why.
type attempt struct {
	q   string
	err error
}

// retry runs refused statements again until none more goes through.
// query_log orders by the second only, so a test's CREATE and the ALTERs
// right after it (or a DROP COLUMN and the ADD that undoes it) may come
// back in either order; a statement refused only for its place in that
// order goes through once its predecessor has run.
func retry(exec func(string) (string, error), refused []attempt) []attempt {
	for progress := true; progress && len(refused) > 0; {
		progress = false
		left := refused[:0]
		for _, a := range refused {
			if _, err := exec(a.q); err != nil {
				left = append(left, attempt{a.q, err})
			} else {
				progress = true
			}
		}
		refused = left
	}
	return refused
}

// migrate makes database ref as `meridian migrate` would on a single node.
func migrate(exec func(string) (string, error)) error {
	stmts := store.SetupStatements("ref")
	ms, err := store.Migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		ss, err := m.Statements(store.Options{Database: "ref"})
		if err != nil {
			return err
		}
		stmts = append(stmts, ss...)
	}
	for _, q := range append(stmts, "USE ref") {
		if db, table, column, ok := store.AddedColumn(q); ok {
			out, err := exec(fmt.Sprintf("SELECT count() FROM system.columns WHERE database = '%s' AND table = '%s' AND name = '%s'", db, table, column))
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "0" {
				continue // made by the CREATE already, as store.Migrate skips it
			}
		}
		if _, err := exec(q); err != nil {
			return fmt.Errorf("cannot migrate: %v\n%s", err, q)
		}
	}
	return nil
}

// loggedStatements reads, oldest first, the queries clickhouse-go ran to
// completion on the server whose HTTP interface is at addr.
func loggedStatements(addr string) ([]string, error) {
	post := func(sql string) (io.ReadCloser, error) {
		resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(sql))
		if err != nil {
			return nil, fmt.Errorf("cannot reach ClickHouse's HTTP interface at %s: %w", addr, err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return nil, fmt.Errorf("ClickHouse at %s: %s", addr, strings.TrimSpace(string(b)))
		}
		return resp.Body, nil
	}
	body, err := post("SYSTEM FLUSH LOGS")
	if err != nil {
		return nil, err
	}
	body.Close()
	body, err = post(`SELECT query FROM system.query_log
WHERE type = 2 AND is_initial_query AND interface = 1 AND client_name LIKE 'clickhouse-go/%'
ORDER BY event_time FORMAT JSONEachRow`)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var qs []string
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var row struct{ Query string }
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("cannot read query_log: %w", err)
		}
		qs = append(qs, row.Query)
	}
	return qs, sc.Err()
}
