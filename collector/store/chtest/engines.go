package chtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/meridian-net/meridian/collector/store"
)

// Two engines run every statement the product sends: the ClickHouse 18.16
// server `make test` starts (the oldest we support, and the only server
// package here) and ClickHouse 26.x in-process through chDB (what users run
// today). A statement either refuses is a bug; Both says which refused what.

// EnvHTTP names the variable holding the test server's HTTP interface,
// HOST:PORT. Tests read answers as text through it so that both engines'
// answers compare as they are printed (clickhouse-go's HTTP mode fails on
// 18.16; the plain HTTP interface does not).
const EnvHTTP = "MERIDIAN_TEST_CLICKHOUSE_HTTP"

// EnvChDB names the variable holding the path of libchdb.so, the one the
// chDB binding itself reads.
const EnvChDB = "CHDB_LIB_PATH"

// Engine runs SQL text on one ClickHouse and answers in TabSeparated.
type Engine struct {
	Name string // "18.16" or "26.x" style: the version the engine reports
	DB   string // the database statements use
	run  func(sql string) (string, error)
}

// Exec runs sql and returns its raw TabSeparated output.
func (e *Engine) Exec(sql string) (string, error) { return e.run(sql) }

// Query runs sql and splits its TabSeparated answer into rows of fields.
func (e *Engine) Query(sql string) ([][]string, error) {
	out, err := e.run(sql)
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

// Server returns the 18.16 test server as an Engine on database db (made by
// New), through its HTTP interface.
func Server(tb testing.TB, db string) *Engine {
	tb.Helper()
	addr := os.Getenv(EnvHTTP)
	if addr == "" {
		tb.Fatalf("%s is not set: this test reads answers through the test ClickHouse's HTTP interface. Run `make test`, or start one with "+
			"`deploy/clickhouse/local.sh start var/ch` and set %s to the contents of var/ch/http_addr", EnvHTTP, EnvHTTP)
	}
	// A session, so that a SET holds for the statements after it, as on a
	// native connection.
	u := "http://" + addr + "/?database=" + url.QueryEscape(db) + "&session_id=chtest_" + randHex(8)
	e := &Engine{DB: db, run: func(sql string) (string, error) {
		resp, err := http.Post(u, "text/plain", strings.NewReader(sql))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s", strings.TrimSpace(string(b)))
		}
		return string(b), nil
	}}
	e.Name = version(tb, e)
	return e
}

// ChDB starts ClickHouse 26.x in-process (chdbd, through the chDB binding)
// for tb, creates database db there and applies every migration in its
// single-node form, rendered from the same templates `meridian migrate`
// uses. It is stopped with tb.
func ChDB(tb testing.TB, db string) *Engine {
	tb.Helper()
	lib := os.Getenv(EnvChDB)
	if lib == "" {
		tb.Fatalf("%s is not set: this test needs ClickHouse 26.x through chDB. Run `make test`, or install it with "+
			"`deploy/chdb/install.sh` and set %s to the path it prints", EnvChDB, EnvChDB)
	}
	if _, err := os.Stat(lib); err != nil {
		tb.Fatalf("%s=%s: %v; reinstall with `deploy/chdb/install.sh`", EnvChDB, lib, err)
	}
	dir := tb.TempDir()
	bin := filepath.Join(dir, "chdbd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/meridian-net/meridian/collector/store/chtest/chdbd").CombinedOutput(); err != nil {
		tb.Fatalf("cannot build chdbd: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), EnvChDB+"="+lib)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("cannot start chdbd: %v", err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	in := bufio.NewReader(stdout)
	enc := json.NewEncoder(stdin)
	var mu sync.Mutex
	e := &Engine{DB: db, run: func(sql string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(map[string]string{"sql": sql, "format": "TabSeparated"}); err != nil {
			return "", fmt.Errorf("chdbd: %w", err)
		}
		line, err := in.ReadBytes('\n')
		if err != nil {
			return "", fmt.Errorf("chdbd exited: %w", err)
		}
		var a struct{ Out, Err string }
		if err := json.Unmarshal(line, &a); err != nil {
			return "", fmt.Errorf("chdbd: %w", err)
		}
		if a.Err != "" {
			return "", fmt.Errorf("%s", a.Err)
		}
		return a.Out, nil
	}}
	e.Name = version(tb, e)
	var stmts []Stmt
	for _, s := range store.SetupStatements(db) {
		stmts = append(stmts, Stmt{Name: "migrate's setup", SQL: s})
	}
	for _, s := range append(stmts, MigrationStatements(tb, db)...) {
		if has, err := e.HasAddedColumn(s.SQL); err != nil {
			tb.Fatalf("ClickHouse %s: %v", e.Name, err)
		} else if has {
			continue
		}
		if _, err := e.Exec(s.SQL); err != nil {
			tb.Fatalf("ClickHouse %s refuses %s: %v\n%s", e.Name, s.Name, err, s.SQL)
		}
	}
	if _, err := e.Exec("USE " + db); err != nil {
		tb.Fatal(err)
	}
	return e
}

// HasAddedColumn says whether stmt is a migration's ADD COLUMN whose column
// the table has already, as store.Migrate skips it (store.AddedColumn).
func (e *Engine) HasAddedColumn(stmt string) (bool, error) {
	db, table, column, ok := store.AddedColumn(stmt)
	if !ok {
		return false, nil
	}
	out, err := e.Exec(fmt.Sprintf("SELECT count() FROM system.columns WHERE database = '%s' AND table = '%s' AND name = '%s'", db, table, column))
	return strings.TrimSpace(out) != "0", err
}

func version(tb testing.TB, e *Engine) string {
	tb.Helper()
	out, err := e.Exec("SELECT version()")
	if err != nil {
		tb.Fatalf("cannot ask ClickHouse its version: %v", err)
	}
	return strings.TrimSpace(out)
}

// Stmt is one named SQL statement.
type Stmt struct{ Name, SQL string }

// MigrationStatements renders every migration for a single node, database db.
func MigrationStatements(tb testing.TB, db string) []Stmt {
	tb.Helper()
	ms, err := store.Migrations()
	if err != nil {
		tb.Fatal(err)
	}
	var out []Stmt
	for _, m := range ms {
		ss, err := m.Statements(store.Options{Database: db})
		if err != nil {
			tb.Fatal(err)
		}
		for _, s := range ss {
			out = append(out, Stmt{Name: "migration " + m.Name, SQL: s})
		}
	}
	return out
}

// Answer is what one engine made of one statement.
type Answer struct {
	Rows [][]string
	Err  error
}

// Both runs each statement on every engine, in order, and fails tb naming
// each statement an engine refused and what it said. It returns the answers,
// answers[i][j] being statement i on engine j.
func Both(tb testing.TB, engines []*Engine, stmts []Stmt) [][]Answer {
	tb.Helper()
	answers := make([][]Answer, len(stmts))
	for i, s := range stmts {
		answers[i] = make([]Answer, len(engines))
		for j, e := range engines {
			rows, err := e.Query(s.SQL)
			answers[i][j] = Answer{rows, err}
			if err != nil {
				tb.Errorf("ClickHouse %s refuses %s: %v\n%s", e.Name, s.Name, firstLine(err), s.SQL)
			}
		}
	}
	return answers
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// CopyTables copies the named tables' rows, as stored (replays included,
// not merged), from one engine's database to another's, through an INSERT
// with the column list. Materialized views on the target fill its rollups as
// the product's own inserts do.
func CopyTables(tb testing.TB, from, to *Engine, tables ...string) {
	tb.Helper()
	for _, t := range tables {
		cols, err := from.Query(fmt.Sprintf("SELECT name FROM system.columns WHERE database = '%s' AND table = '%s' AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')", from.DB, t))
		if err != nil || len(cols) == 0 {
			tb.Fatalf("cannot list the columns of %s.%s on %s: %v (%d columns)", from.DB, t, from.Name, err, len(cols))
		}
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c[0]
		}
		list := strings.Join(names, ", ")
		data, err := from.Exec(fmt.Sprintf("SELECT %s FROM %s.%s FORMAT TabSeparated", list, from.DB, t))
		if err != nil {
			tb.Fatalf("cannot read %s.%s on %s: %v", from.DB, t, from.Name, err)
		}
		if data == "" {
			continue
		}
		if _, err := to.Exec(fmt.Sprintf("INSERT INTO %s.%s (%s) FORMAT TabSeparated\n%s", to.DB, t, list, data)); err != nil {
			tb.Fatalf("ClickHouse %s refuses the rows of %s from %s: %v", to.Name, t, from.Name, err)
		}
	}
}

// Engines returns both engines on database db: the 18.16 test server
// (where New made db) first, then ClickHouse 26.x with db migrated alike.
func Engines(tb testing.TB, db string) []*Engine {
	tb.Helper()
	return []*Engine{Server(tb, db), ChDB(tb, db)}
}

// SameRows says whether two engines' answers agree: the same rows, fields
// equal as text or, where both are numbers, within tol of each other
// (engines may round a last digit differently: 18.16 rounds 95.05 to 95.1
// where current releases give 95).
func SameRows(a, b [][]string, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j, x := range a[i] {
			y := b[i][j]
			if x == y {
				continue
			}
			fx, errx := strconv.ParseFloat(x, 64)
			fy, erry := strconv.ParseFloat(y, 64)
			if errx != nil || erry != nil || math.Abs(fx-fy) > tol {
				return false
			}
		}
	}
	return true
}
