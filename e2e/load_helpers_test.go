package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// loadPV is a page-view id that names its sender: connection, phase and
// sequence number, so a stored row is traced back to its answer.
const loadPV = "%08x-%04x-4000-8000-%012x"

// loadGen sends beacons as browsers do (text/plain, an Origin, a user
// agent) over raw keep-alive connections and keeps a ledger of every
// answer. Raw connections, not net/http's client: on two shared cores the
// generator must cost little beside the collector.
type loadGen struct {
	addr    string  // the collector, HOST:PORT
	key     string  // the site key
	phase   int     // part of every page-view id
	conns   int     // connections, each with one beacon in flight at most
	rate    float64 // beacons offered per second; 0: each connection sends again as soon as answered
	timeout time.Duration
}

// loadRun is what a run sent and got back.
type loadRun struct {
	phase   int
	status  [][]uint16 // by connection, by sequence: the HTTP status, 0 for no answer
	noRetry int64      // 429/503 answers without Retry-After
	missed  int64      // beacons the pacer could not hand to a free connection
	elapsed time.Duration
}

// run sends for d, then waits for the answers in flight.
func (g loadGen) run(d time.Duration) *loadRun {
	body := strings.Replace(benchBeacon, "SITEKEY", g.key, 1)
	pre, post, _ := strings.Cut(body, "PV")
	pvLen := len(fmt.Sprintf(loadPV, 0, 0, 0))
	head := fmt.Sprintf("POST /v1/beacon HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain;charset=UTF-8\r\nOrigin: %s\r\nUser-Agent: %s\r\nContent-Length: %d\r\n\r\n%s",
		g.addr, benchOrigin, benchUA, len(pre)+pvLen+len(post), pre)
	r := &loadRun{phase: g.phase, status: make([][]uint16, g.conns)}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var tokens chan struct{}
	var wg sync.WaitGroup
	if g.rate > 0 {
		tokens = make(chan struct{}, g.conns)
		wg.Add(1)
		go func() { defer wg.Done(); r.missed = pace(ctx, g.rate, tokens) }()
	}
	start := time.Now()
	for c := range g.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.connection(ctx, c, head, post, tokens, &r.status[c], &r.noRetry)
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// pace offers rate beacons a second, one token each, and counts those no
// connection was free to take.
func pace(ctx context.Context, rate float64, tokens chan<- struct{}) (missed int64) {
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	issued := int64(0)
	for {
		select {
		case <-ctx.Done():
			return missed
		case now := <-tick.C:
			for due := int64(rate * now.Sub(start).Seconds()); issued < due; issued++ {
				select {
				case tokens <- struct{}{}:
				default:
					missed++
				}
			}
		}
	}
}

// connection is one browser-like sender: it records each answer at its
// sequence number, reconnecting when the collector closes.
func (g loadGen) connection(ctx context.Context, c int, head, tail string, tokens <-chan struct{}, out *[]uint16, noRetry *int64) {
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	req := make([]byte, 0, len(head)+64+len(tail))
	for seq := 0; ; seq++ {
		if tokens != nil {
			select {
			case <-tokens:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		if conn == nil {
			var err error
			if conn, err = net.DialTimeout("tcp", g.addr, 5*time.Second); err != nil {
				*out = append(*out, 0)
				conn = nil
				time.Sleep(10 * time.Millisecond)
				continue
			}
			br = bufio.NewReader(conn)
		}
		req = append(fmt.Appendf(append(req[:0], head...), loadPV, c, g.phase, seq), tail...)
		status, flags := exchange(conn, br, req, g.timeout)
		*out = append(*out, uint16(status))
		if (status == 429 || status == 503) && flags&hasRetryAfter == 0 {
			atomic.AddInt64(noRetry, 1)
		}
		if status == 0 || flags&mustClose != 0 {
			conn.Close()
			conn = nil
		}
	}
}

const (
	mustClose     = 1 << iota // the connection cannot be reused
	hasRetryAfter             // the answer carried Retry-After
)

// exchange writes one request and reads its answer: the status (0 when
// none came) and flags.
func exchange(conn net.Conn, br *bufio.Reader, req []byte, timeout time.Duration) (int, int) {
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(req); err != nil {
		return 0, mustClose
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, mustClose
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	flags := 0
	if err != nil || resp.Close {
		flags |= mustClose
	}
	if resp.Header.Get("Retry-After") != "" {
		flags |= hasRetryAfter
	}
	return resp.StatusCode, flags
}

// loadTally counts a run's answers.
type loadTally struct {
	sent, ok, s429, s503, other, none int64
}

func (r *loadRun) tally() loadTally {
	var t loadTally
	for _, conn := range r.status {
		for _, s := range conn {
			t.sent++
			switch {
			case s == 0:
				t.none++
			case s >= 200 && s < 300:
				t.ok++
			case s == 429:
				t.s429++
			case s == 503:
				t.s503++
			default:
				t.other++
			}
		}
	}
	return t
}

func (r *loadRun) perSecond(n int64) float64 { return float64(n) / r.elapsed.Seconds() }

// loadCheck is the ledger against ClickHouse: every acknowledged beacon
// stored, once.
type loadCheck struct {
	acked, stored, lost, dups, unacked, refused, strangers int64
}

// checkStored reads every page view after FINAL, with its copies, and
// matches it to the runs' ledgers by its id.
func checkStored(t *testing.T, conn driver.Conn, runs ...*loadRun) loadCheck {
	t.Helper()
	byPhase := map[int]*loadRun{}
	var c loadCheck
	for _, r := range runs {
		byPhase[r.phase] = r
		c.acked += r.tally().ok
	}
	rows, err := conn.Query(context.Background(), "SELECT pv, count() FROM rum_pageviews FINAL GROUP BY pv")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var pv string
		var n uint64
		if err := rows.Scan(&pv, &n); err != nil {
			t.Fatal(err)
		}
		c.stored++
		c.dups += int64(n - 1)
		status, ok := lookupPV(byPhase, pv)
		switch {
		case !ok:
			c.strangers++
		case status >= 200 && status < 300:
			found++
		case status == 0:
			c.unacked++ // sent, answer lost: may or may not be stored
		default:
			c.refused++ // refused, stored all the same (harmless: never counted twice)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	c.lost = c.acked - int64(found)
	return c
}

// lookupPV finds the answer a page view got.
func lookupPV(byPhase map[int]*loadRun, pv string) (uint16, bool) {
	f := strings.Split(pv, "-")
	if len(f) != 5 {
		return 0, false
	}
	conn, err1 := strconv.ParseUint(f[0], 16, 32)
	phase, err2 := strconv.ParseUint(f[1], 16, 16)
	seq, err3 := strconv.ParseUint(f[4], 16, 48)
	r := byPhase[int(phase)]
	if err1 != nil || err2 != nil || err3 != nil || r == nil || conn >= uint64(len(r.status)) || seq >= uint64(len(r.status[conn])) {
		return 0, false
	}
	return r.status[conn][seq], true
}

// rssPeak samples pid's RSS every 100ms until stop is called, and returns
// the highest in KiB.
func rssPeak(t *testing.T, pid int) (stop func() int64) {
	done, result := make(chan struct{}), make(chan int64)
	go func() {
		var peak int64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, rssKiB(t, pid))
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { close(done); return <-result }
}

// loadCollector is a collector process the load test starts and stops
// itself, so that two builds can run one after the other.
type loadCollector struct {
	cmd   *exec.Cmd
	addr  string
	spool string
	log   *os.File
}

func startLoadCollector(t *testing.T, bin, chAddr, db string, args ...string) *loadCollector {
	t.Helper()
	c := &loadCollector{addr: freeAddr(t), spool: filepath.Join(t.TempDir(), "spool")}
	var err error
	if c.log, err = os.Create(filepath.Join(t.TempDir(), "collector.log")); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, append([]string{"serve", "--listen", c.addr, "--spool-dir", c.spool}, args...)...)
	c.cmd.Env = append(os.Environ(), "MERIDIAN_CLICKHOUSE="+chAddr, "MERIDIAN_DATABASE="+db)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop(t) })
	waitHTTP(t, "http://"+c.addr+"/readyz")
	return c
}

// stop ends the collector with SIGTERM (once) and fails the test unless it
// exits cleanly.
func (c *loadCollector) stop(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("collector did not exit cleanly on SIGTERM: %v (log: %s)", err, c.log.Name())
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
		t.Errorf("collector did not stop within 30s of SIGTERM")
	}
	c.log.Close()
}

// drained waits until the journal holds no segment and the stored count
// stops moving, and says how long that took.
func (c *loadCollector) drained(t *testing.T, conn driver.Conn, within time.Duration) time.Duration {
	t.Helper()
	start, last := time.Now(), uint64(1<<63)
	for time.Since(start) < within {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM rum_pageviews").Scan(&n); err != nil {
			t.Fatal(err)
		}
		segs, _ := filepath.Glob(filepath.Join(c.spool, "beacons", "seg-*"))
		if n == last && len(segs) == 0 {
			return time.Since(start)
		}
		last = n
		time.Sleep(time.Second)
	}
	t.Fatalf("the collector's journal still holds beacons %v after the load", within)
	return 0
}
