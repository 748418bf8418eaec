package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// shippedHAProxyConfig is the config users install; the scale-out test and
// bench run it, changing only addresses (haproxyConfig).
const shippedHAProxyConfig = "../deploy/haproxy/meridian.cfg"

// needHAProxy fails the test, with the command that installs it, when
// there is no haproxy binary.
func needHAProxy(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatalf("this test needs HAProxy (Debian's haproxy 2.6): run deploy/deps.sh haproxy")
	}
}

var (
	bindLine   = regexp.MustCompile(`(?m)^([ \t]*bind[ \t]+)(\S+)`)
	serverLine = regexp.MustCompile(`(?m)^([ \t]*server[ \t]+)(\S+)([ \t]+)(\S+)(.*)$`)
)

// haproxyConfig rewrites the shipped config for loopback: its one active
// bind address becomes bind, and its servers, by name in order of first
// appearance (c1, c2, … in every backend), get the collectors' addresses;
// servers beyond len(collectors) are left out. Everything else is the
// file as shipped, so that the test cannot drift from it.
func haproxyConfig(t *testing.T, bind string, collectors []string) string {
	t.Helper()
	raw, err := os.ReadFile(shippedHAProxyConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	if n := len(bindLine.FindAllString(cfg, -1)); n != 1 {
		t.Fatalf("%s has %d active bind lines, want 1 (the test rewrites it to %s)", shippedHAProxyConfig, n, bind)
	}
	cfg = bindLine.ReplaceAllString(cfg, "${1}"+bind)
	index := map[string]int{}
	cfg = serverLine.ReplaceAllStringFunc(cfg, func(line string) string {
		m := serverLine.FindStringSubmatch(line)
		i, ok := index[m[2]]
		if !ok {
			i = len(index)
			index[m[2]] = i
		}
		if i >= len(collectors) {
			return "" // a blank line
		}
		return m[1] + m[2] + m[3] + collectors[i] + m[5]
	})
	if len(index) < len(collectors) {
		t.Fatalf("%s names %d servers, the test needs %d", shippedHAProxyConfig, len(index), len(collectors))
	}
	return cfg
}

// startHAProxy checks and runs cfg in the foreground and waits until it
// forwards GET /readyz to a collector.
func startHAProxy(t *testing.T, name, cfg, listen string) *proc {
	t.Helper()
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-q", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c refuses the config derived from %s: %v\n%s", shippedHAProxyConfig, err, out)
	}
	// -db: foreground, no daemon; SIGUSR1 is HAProxy's graceful stop.
	p := runProc(t, name, syscall.SIGUSR1, nil, "haproxy", "-db", "-f", file)
	waitHTTP(t, "http://"+listen+"/readyz")
	return p
}

// proc is a long-lived process that a test may kill and start again
// (start's cleanup would then fail on the second Wait). Its output goes to
// the test log, prefixed with its name.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and its output is read
	err  error
}

// runProc starts bin; at cleanup it is stopped with stopSig, and the test
// fails unless it then exits cleanly.
func runProc(t *testing.T, name string, stopSig syscall.Signal, env []string, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Logf("[%s] %s", name, sc.Text())
		}
		p.err = cmd.Wait() // after the reads, as StdoutPipe asks
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.exited() {
			return // killed by the test, or died: the test says which
		}
		if err := p.stop(t, stopSig); err != nil {
			t.Errorf("%s did not exit cleanly on %v: %v", name, stopSig, err)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to 15 s for the process to exit (then kills
// it); it returns how it exited.
func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if p.exited() {
		return p.err
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 15s of %v", p.name, sig)
	}
	return p.err
}

// clusterDatabase migrates a fresh database on the two-shard test cluster
// with the command operators run (`meridian migrate --cluster`), and drops
// it on every node at cleanup. It returns the nodes' addresses and a
// connection to the first node, whose tables are the Distributed ones.
func clusterDatabase(t *testing.T, bin string) ([]string, string, driver.Conn) {
	t.Helper()
	addrs := chtest.ClusterAddrs(t)
	db := fmt.Sprintf("scaleout_%d", time.Now().UnixNano())
	ctx := context.Background()
	var conns []driver.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			if err := store.DropDatabase(context.Background(), c, db); err != nil {
				t.Logf("cannot drop %s: %v", db, err)
			}
			c.Close()
		}
	})
	for _, a := range addrs {
		c, err := store.Open(ctx, store.Options{Addr: a, Database: "default"})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	meridianOn(t, bin, addrs[0], db, "migrate", "--cluster", chtest.Cluster)
	conn, err := store.Open(ctx, store.Options{Addr: addrs[0], Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return addrs, db, conn
}

// meridianOn is meridian() against a given ClickHouse server.
func meridianOn(t *testing.T, bin, addr, db string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MERIDIAN_CLICKHOUSE="+addr, "MERIDIAN_DATABASE="+db)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("meridian %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// fromAddr is an HTTP client whose connections come from src: every
// 127.0.0.0/8 address is loopback on Linux, so a test can play visitors
// from many networks, and HAProxy sees each one's own address.
func fromAddr(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1},
		Timeout:   15 * time.Second,
	}
}

// postBeacon sends one beacon like rum.js's sendBeacon, plus a forged
// X-Forwarded-For, and returns the status (0: no answer).
func postBeacon(c *http.Client, url, body, forged string) int {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", benchOrigin)
	req.Header.Set("User-Agent", benchUA)
	req.Header.Set("X-Forwarded-For", forged)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// beaconLoad is what the test browsers sent: page-view id → visitor
// network, the status they saw (0: no answer) and when.
type beaconLoad struct {
	started time.Time
	wg      sync.WaitGroup
	mu      sync.Mutex
	sent    map[string]sentBeacon
}

type sentBeacon struct {
	from   visitorNet
	status int
	at     time.Time
}

// runBeacons starts one browser per worker, each posting beacons (a fresh
// page-view id each) through its own connection from its network until
// ctx is done, with a short pause between: the test needs a steady stream
// over the kill, not a saturated machine.
func runBeacons(ctx context.Context, url, key string, workers []visitorNet) *beaconLoad {
	l := &beaconLoad{started: time.Now(), sent: map[string]sentBeacon{}}
	for w, from := range workers {
		ip := net.ParseIP(from.src).To4()
		ip[3] = byte(w + 1)
		from.src = ip.String()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := fromAddr(from.src)
			defer c.CloseIdleConnections()
			for i := 0; ctx.Err() == nil; i++ {
				pv := fmt.Sprintf("%08x-0000-4000-8000-%012x", w, i)
				status := postBeacon(c, url, beaconBody(key, pv), forgedXFF)
				l.mu.Lock()
				l.sent[pv] = sentBeacon{from, status, time.Now()}
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

func beaconBody(key, pv string) string {
	return strings.Replace(strings.Replace(benchBeacon, "SITEKEY", key, 1), "PV", pv, 1)
}

func (l *beaconLoad) wait() { l.wg.Wait() }

type ackCount struct{ total, afterKill int }

type failCount struct {
	total    int
	byStatus map[int]int
}

// summary counts acknowledged beacons, and the others by status.
func (l *beaconLoad) summary(killedAt time.Time) (ackCount, failCount) {
	var a ackCount
	f := failCount{byStatus: map[int]int{}}
	for _, s := range l.sent {
		switch {
		case s.status/100 != 2:
			f.total++
			f.byStatus[s.status]++
		case s.at.After(killedAt):
			a.total, a.afterKill = a.total+1, a.afterKill+1
		default:
			a.total++
		}
	}
	return a, f
}

// missing lists the acknowledged beacons not in pvs.
func (l *beaconLoad) missing(pvs map[string]visitorNet) []string {
	var out []string
	for pv, s := range l.sent {
		if _, ok := pvs[pv]; s.status/100 == 2 && !ok {
			out = append(out, pv)
		}
	}
	return out
}

// storedPageViews reads every page view once (FINAL folds a replay) from
// the Distributed table, with what enrichment gave it; a page view stored
// twice after FINAL fails the test.
func storedPageViews(t *testing.T, conn driver.Conn) map[string]visitorNet {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT pv, country, asn FROM rum_pageviews FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]visitorNet{}
	for rows.Next() {
		var pv string
		var v visitorNet
		if err := rows.Scan(&pv, &v.country, &v.asn); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[pv]; dup {
			t.Fatalf("page view %s is stored twice after FINAL", pv)
		}
		out[pv] = v
	}
	return out
}

// countResults returns the results after FINAL and their distinct ids.
func countResults(t *testing.T, conn driver.Conn) (final, ids uint64) {
	t.Helper()
	ctx := context.Background()
	if err := conn.QueryRow(ctx, "SELECT count() FROM results FINAL").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT uniqExact(id) FROM results").Scan(&ids); err != nil {
		t.Fatal(err)
	}
	return final, ids
}

// countPageViewRows counts rum_pageviews rows (replays included) through
// the Distributed table.
func countPageViewRows(t *testing.T, conn driver.Conn) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM rum_pageviews").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// beaconWrkScript writes TestBeaconIngestBench's wrk script (benchLua) for
// the site key and returns its path.
func beaconWrkScript(t *testing.T, key string) string {
	t.Helper()
	pre, post, _ := strings.Cut(strings.Replace(benchBeacon, "SITEKEY", key, 1), "PV")
	lua := strings.NewReplacer("@PRE@", strconv.Quote(pre), "@POST@", strconv.Quote(post),
		"@ORIGIN@", strconv.Quote(benchOrigin), "@UA@", strconv.Quote(benchUA)).Replace(benchLua)
	script := filepath.Join(t.TempDir(), "beacon.lua")
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		t.Fatal(err)
	}
	return script
}

// runWrk runs wrk -t2 with the beacon script (phase makes its page-view
// ids unique) and returns what the script printed and wrk's CPU seconds.
func runWrk(t *testing.T, script, url string, phase, conns int, d time.Duration) wrkResult {
	t.Helper()
	cmd := exec.Command("wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--timeout", "10s", "-s", script, url, "--", strconv.Itoa(phase))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	_, js, ok := strings.Cut(string(out), "BENCHJSON ")
	var r wrkResult
	if !ok || json.Unmarshal([]byte(strings.TrimSpace(js)), &r) != nil {
		t.Fatalf("wrk printed no result:\n%s", out)
	}
	r.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return r
}
