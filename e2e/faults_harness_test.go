package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/e2e/faultkit"
)

// The fault suite's world, one per scenario: a fresh database, two real
// collectors (`meridian serve`), three real agents (`meridian-agent run`,
// distinct regions, tcp checks against their own local listener every
// second) and a beacon generator. Each agent and the generator reach the
// collectors through their own faultkit.Proxy (round robin, failover), so
// faults can hit one sender or all; the proxies' taps and the agents'
// spools feed one ledger of every id produced and acknowledged.

// faultOptions shape a scenario's world; the zero value is the plain one.
type faultOptions struct {
	ch        *faultkit.CH   // nil: the test server `make test` starts
	serve     [2][]string    // more `serve` flags, per collector
	spoolDirs [2]string      // the collectors' --spool-dir ("" : a temp dir)
	checks    map[int]string // more YAML check lines, per agent index
	pins      map[int]int    // an agent's proxy sends to this collector (1 or 2) alone
	ship      map[int]string // the ship: line, per agent index
	beacons   int            // beacons a second (default 20; -1: none)
	setup     func(e *faultEnv)
}

type faultEnv struct {
	t         *testing.T
	dir       string
	ch        *faultkit.CH
	db        string
	dbConn    driver.Conn
	collector string // binaries
	agentBin  string
	cols      [2]*faultCollector
	agents    [3]*faultAgent
	gen       *faultBeacons
	led       *faultkit.Ledger
	accounted map[string]bool // results and beacons known not to be stored, and why counted elsewhere
	// beforeTally, if set, sees the stored results before they are counted
	// (to account for what a scenario dropped on purpose).
	beforeTally func(res faultkit.Stored)
	counted     *faultkit.Count // by finish
	stopAt      time.Time       // when finish stopped the agents
	secs        float64
	notes       []string
	started     time.Time
	stopPoll    chan struct{}
	polled      chan struct{}
	pollOnce    sync.Once
	polling     bool // the poller started
}

var faultRegions = [3]string{"eu-west", "us-east", "ap-south"}

// newFaultEnv builds and starts a scenario's world.
func newFaultEnv(t *testing.T, o faultOptions) *faultEnv {
	t.Helper()
	collector, agent := binaries(t)
	e := &faultEnv{t: t, dir: t.TempDir(), collector: collector, agentBin: agent, led: faultkit.NewLedger(),
		accounted: map[string]bool{}, started: time.Now(), stopPoll: make(chan struct{}), polled: make(chan struct{})}
	t.Cleanup(func() {
		e.stopPolling()
		e.dumpLogs()
		e.addRow()
	})
	e.ch = o.ch
	e.db, e.dbConn = faultDatabase(t, o.ch)
	if o.setup != nil {
		o.setup(e)
	}
	// Tokens and the site exist before the collectors start, as in a real
	// deployment: their caches know them from the first request.
	ups := make([]string, 2)
	for i := range e.cols {
		spool := o.spoolDirs[i]
		if spool == "" {
			spool = filepath.Join(e.dir, fmt.Sprintf("c%d-spool", i+1))
		}
		e.cols[i] = &faultCollector{name: fmt.Sprintf("c%d", i+1), listen: faultkit.FreeAddr(t), spool: spool, flags: o.serve[i]}
		ups[i] = e.cols[i].listen
	}
	for i := range e.agents {
		e.agents[i] = e.newAgent(i, ups, o.checks[i], o.ship[i])
		e.agents[i].proxy.Set(faultkit.Faults{Pin: o.pins[i]})
	}
	siteKey := e.addSite()
	for i := range e.cols {
		e.startCollector(i)
	}
	for i := range e.agents {
		e.startAgent(i)
	}
	e.polling = true
	go e.pollSpools()
	if rate := o.beacons; rate >= 0 {
		if rate == 0 {
			rate = 20
		}
		e.gen = e.startBeacons(ups, siteKey, rate)
	}
	return e
}

// faultDatabase makes a fresh, migrated database on ch (the test server
// when nil) and returns its name and a connection to it (for the setup
// `meridian agents add` and `sites add` do); it is dropped with t.
func faultDatabase(t *testing.T, ch *faultkit.CH) (string, driver.Conn) {
	t.Helper()
	if ch == nil {
		o, conn := chtest.New(t)
		return o.Database, conn
	}
	ctx := context.Background()
	o := store.Options{Addr: ch.Addr, Database: fmt.Sprintf("test_%012x", time.Now().UnixNano()&0xffffffffffff)}
	if _, err := store.Migrate(ctx, o, nil); err != nil {
		t.Fatalf("cannot migrate %s on the suite's own ClickHouse: %v", o.Database, err)
	}
	conn, err := store.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ch.Exec("default", "DROP DATABASE IF EXISTS "+o.Database)
	})
	return o.Database, conn
}

func (e *faultEnv) conn() driver.Conn { return e.dbConn }

// chOf is where the scenario's database lives.
func (e *faultEnv) chOf() (*faultkit.CH, string) {
	if e.ch != nil {
		return e.ch, e.db
	}
	http := os.Getenv(chtest.EnvHTTP)
	if http == "" {
		e.t.Fatalf("%s is not set: the fault suite reads counts through the test ClickHouse's HTTP interface. Run `make test`, or "+
			"`deploy/clickhouse/local.sh start var/ch` and set %s and %s (see e2e/test.sh)", chtest.EnvHTTP, chtest.EnvAddr, chtest.EnvHTTP)
	}
	return &faultkit.CH{Addr: chtest.Addr(e.t), HTTP: http}, e.db
}

// sql runs a statement of the scenario's on its database (not through
// clickhouse-go: see faultkit.CH).
func (e *faultEnv) sql(q string) string {
	e.t.Helper()
	ch, db := e.chOf()
	out, err := ch.Exec(db, q)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

type faultCollector struct {
	name, listen, spool string
	flags               []string
	proc                *faultkit.Proc
}

func (c *faultCollector) url() string { return "http://" + c.listen }

// startCollector starts (or restarts, on the same spool) collector i.
func (e *faultEnv) startCollector(i int, flags ...string) {
	e.t.Helper()
	c := e.cols[i]
	ch, db := e.chOf()
	args := append([]string{"serve", "--listen", c.listen, "--spool-dir", c.spool, "--flush-interval", "250ms"}, c.flags...)
	c.proc = faultkit.Start(e.t, c.name, filepath.Join(e.dir, c.name+".log"),
		[]string{"MERIDIAN_CLICKHOUSE=" + ch.Addr, "MERIDIAN_DATABASE=" + db}, e.collector, append(args, flags...)...)
	faultkit.WaitUp(e.t, c.proc, c.url()+"/healthz", 20*time.Second)
}

// metric sums a metric family over the running collectors.
func (e *faultEnv) metric(name, match string) float64 {
	e.t.Helper()
	var sum float64
	for _, c := range e.cols {
		if c.proc == nil || !c.proc.Running() {
			continue
		}
		v, err := faultkit.Metric(c.url()+"/metrics", name, match)
		if err != nil {
			e.t.Fatalf("%s /metrics: %v", c.name, err)
		}
		sum += v
	}
	return sum
}

// journalSegments counts the segment files waiting in the collectors'
// journals.
func (e *faultEnv) journalSegments() int {
	n := 0
	for _, c := range e.cols {
		for _, kind := range []string{"results", "beacons"} {
			segs, _ := filepath.Glob(filepath.Join(c.spool, kind, "seg-*.ndjson"))
			n += len(segs)
		}
	}
	return n
}

// faultTarget is a local TCP listener that counts connections: a tcp
// check run is one connect, so it says how many runs an agent made.
type faultTarget struct {
	ln      net.Listener
	accepts atomic.Int64
}

func newFaultTarget(t *testing.T) *faultTarget {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ft := &faultTarget{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ft.accepts.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ft
}

// note adds a line to the scenario's row in the table.
func (e *faultEnv) note(format string, args ...any) {
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

// dumpLogs shows the processes' last log lines when the scenario failed,
// and keeps every log in $MERIDIAN_FAULTS_LOGS/<scenario>/ when set.
func (e *faultEnv) dumpLogs() {
	if keep := os.Getenv("MERIDIAN_FAULTS_LOGS"); keep != "" {
		dst := filepath.Join(keep, filepath.Base(e.t.Name()))
		os.MkdirAll(dst, 0o755)
		logs, _ := filepath.Glob(filepath.Join(e.dir, "*.log"))
		for _, l := range logs {
			if b, err := os.ReadFile(l); err == nil {
				os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
			}
		}
	}
	if !e.t.Failed() {
		return
	}
	for _, c := range e.cols {
		if c.proc != nil {
			e.t.Logf("---- %s log (last lines):\n%s", c.name, c.proc.Tail(25))
		}
	}
	for _, a := range e.agents {
		if a != nil && a.proc != nil {
			e.t.Logf("---- %s log (last lines):\n%s", a.name, a.proc.Tail(15))
		}
	}
}

// faultWait polls cond every 50 ms for up to d; false when it never held.
func faultWait(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// soaking says whether the long variants run (MERIDIAN_SOAK=1, make soak).
func soaking() bool { return os.Getenv("MERIDIAN_SOAK") == "1" }

// soak picks the long variant of a duration when soaking.
func soak(short, long time.Duration) time.Duration {
	if soaking() {
		return long
	}
	return short
}

// faultNote joins notes for the table.
func faultNote(notes []string) string { return strings.Join(notes, "; ") }
