package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/e2e/faultkit"
)

// faultAgent is one real agent, its proxy to the collectors and the local
// target its tcp checks connect to.
type faultAgent struct {
	name, region, token  string
	dir, config, metrics string
	proxy                *faultkit.Proxy
	target               *faultTarget
	proc                 *faultkit.Proc
	killed               bool          // SIGKILLed once: a run in flight then is lost by definition
	extraRuns            *atomic.Int64 // runs of its tls checks, counted by their own target

	poll atomic.Bool // the spool poller reads this agent's spool
	mu   sync.Mutex  // guards read
	read map[string]*spoolRead
}

// spoolRead is how far the poller read a spool segment file.
type spoolRead struct {
	off   int64
	lines int64
}

func (e *faultEnv) newAgent(i int, ups []string, checks, ship string) *faultAgent {
	e.t.Helper()
	a := &faultAgent{name: fmt.Sprintf("agent-%d", i+1), region: faultRegions[i], dir: filepath.Join(e.dir, fmt.Sprintf("agent-%d", i+1)),
		metrics: faultkit.FreeAddr(e.t), target: newFaultTarget(e.t), read: map[string]*spoolRead{}}
	a.poll.Store(true)
	var err error
	if a.token, err = store.AddAgent(context.Background(), e.conn(), a.name, a.region); err != nil {
		e.t.Fatal(err)
	}
	e.led.Agent(a.name, a.token, a.region)
	a.proxy = faultkit.NewProxy(e.t, ups, e.led.Tap)
	if ship == "" {
		ship = "ship: {interval: 200ms}"
	}
	tgt := a.target.ln.Addr().String()
	a.config = filepath.Join(e.dir, a.name+".yml")
	cfg := fmt.Sprintf("agent: {name: %s, region: %s}\n%s\nchecks:\n", a.name, a.region, ship)
	for c := 1; c <= 3; c++ {
		cfg += fmt.Sprintf("  - {name: tcp-%d, kind: tcp, target: %q, interval: 1s}\n", c, tgt)
	}
	if err := os.WriteFile(a.config, []byte(cfg+strings.ReplaceAll(checks, "TARGET", tgt)), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// startAgent starts (or restarts, on the same data dir) agent i.
func (e *faultEnv) startAgent(i int) {
	e.t.Helper()
	a := e.agents[i]
	a.proc = faultkit.Start(e.t, a.name, filepath.Join(e.dir, a.name+".log"),
		[]string{"MERIDIAN_TOKEN=" + a.token, "MERIDIAN_COLLECTOR=" + a.proxy.URL()}, e.agentBin,
		"run", "--config", a.config, "--data-dir", a.dir, "--config-poll", "0", "--metrics-listen", a.metrics)
	faultkit.WaitUp(e.t, a.proc, "http://"+a.metrics+"/metrics", 10*time.Second)
}

// agentMetric reads one of an agent's metrics.
func (e *faultEnv) agentMetric(i int, name string) float64 {
	e.t.Helper()
	v, err := faultkit.Metric("http://"+e.agents[i].metrics+"/metrics", name, "")
	if err != nil {
		e.t.Fatalf("%s /metrics: %v", e.agents[i].name, err)
	}
	return v
}

// pollSpools reads the agents' spools every 100 ms into the ledger: every
// result an agent produced is appended (fsynced) there before it is sent,
// and a segment file goes only once all of it is acknowledged (or dropped
// by the cap, long after the poller read it), so the spool is the agent's
// own record of what it produced.
func (e *faultEnv) pollSpools() {
	defer close(e.polled)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-e.stopPoll:
			return
		case <-tick.C:
		}
		for _, a := range e.agents {
			if a.poll.Load() {
				e.readSpool(a)
			}
		}
	}
}

// readSpool reads the complete lines appended to a's spool since last time.
func (e *faultEnv) readSpool(a *faultAgent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	files, _ := filepath.Glob(filepath.Join(a.dir, "spool", "*.ndjson"))
	for _, f := range files {
		seq, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(f), ".ndjson"), 10, 64)
		if err != nil {
			continue
		}
		r := a.read[f]
		if r == nil {
			r = &spoolRead{}
			a.read[f] = r
		}
		data, err := readFrom(f, r.off)
		if err != nil {
			continue
		}
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			if id, sum, ok := faultkit.ResultSum(data[:i], a.region); ok {
				e.led.Produce(faultkit.Results, id, a.name, sum, seq<<32|r.lines)
			}
			data, r.off, r.lines = data[i+1:], r.off+int64(i+1), r.lines+1
		}
	}
}

func readFrom(name string, off int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// stopAgents stops every agent that runs with SIGTERM (it ships what it
// holds first) and reads their spools a last time.
func (e *faultEnv) stopAgents() {
	e.t.Helper()
	for _, a := range e.agents {
		if a.proc.Running() {
			if err := a.proc.Stop(20 * time.Second); err != nil {
				e.t.Error(err)
			}
		}
	}
	e.stopPolling()
	for _, a := range e.agents {
		e.readSpool(a)
	}
}

// stopPolling stops the spool poller and waits for it.
func (e *faultEnv) stopPolling() {
	e.pollOnce.Do(func() {
		if !e.polling {
			return
		}
		close(e.stopPoll)
		<-e.polled
	})
}

// checkRuns compares, per agent, the results it produced with the
// connections its targets saw: a run that connected is one accept, and its
// result is ok, or failed if the probe timed out after connecting (a busy
// machine): ok results <= runs <= results, plus runs in flight at a
// SIGKILL, which never reached the spool.
func (e *faultEnv) checkRuns() {
	e.t.Helper()
	items := e.led.Items(faultkit.Results)
	for _, a := range e.agents {
		spooled, ok := map[string]int{}, map[string]int{}
		for _, it := range items {
			// In its spool, or on the wire only: a segment acked and deleted
			// within a poll (a busy machine) is not seen there.
			if it.Who == a.name {
				f := strings.Split(it.Sum, "|") // see faultkit.ResultSum
				spooled[f[3]]++
				if f[6] == "1" {
					ok[f[3]]++
				}
			}
		}
		runs := map[string]int{"tcp": int(a.target.accepts.Load())}
		if a.extraRuns != nil {
			runs["tls"] = int(a.extraRuns.Load())
		}
		for kind, n := range runs {
			switch {
			case ok[kind] <= n && n <= spooled[kind]:
			case a.killed && ok[kind] <= n:
				e.note("%s: %d %s runs in flight at SIGKILL never spooled", a.name, n-spooled[kind], kind)
			default:
				e.t.Errorf("%s: its %s target saw %d runs, it produced %d %s results (%d ok): want ok <= runs <= results",
					a.name, kind, n, spooled[kind], kind, ok[kind])
			}
		}
	}
}

// waitDrained waits until every running agent holds at most a few results
// at once (a backlog after a 503 or a cut drains over several posts, and
// an agent may back off for up to a minute).
func (e *faultEnv) waitDrained() {
	e.t.Helper()
	var held []float64
	drained := func() bool {
		held = held[:0]
		done := true
		for _, a := range e.agents {
			if !a.proc.Running() {
				continue
			}
			n, err := faultkit.Metric("http://"+a.metrics+"/metrics", "meridian_agent_spool_results", "")
			held = append(held, n)
			done = done && err == nil && n <= 3
		}
		return done && !e.shedLately(3*time.Second)
	}
	// A soak's minute-long backlog behind a small journal cap drains for
	// minutes: the journal takes about a cap's worth a second.
	// On a loaded machine (make test's packages run side by side) the
	// short variant has taken more than 90 s.
	within := soak(3*time.Minute, 5*time.Minute)
	if !faultWait(within, drained) {
		e.t.Errorf("agents still hold results %v after every fault healed: %v", within, held)
	}
}

// shedLately tells whether a collector answered an agent's results 503
// within d. Agents are stopped once their spools are nearly empty, and a
// stopping agent posts what is left once: while the journals are still at
// their cap that post is shed too, and the few results it held stay in its
// spool (kept for its next start, but never stored in this scenario).
func (e *faultEnv) shedLately(d time.Duration) bool {
	for _, p := range e.led.Posts() {
		if p.Kind == faultkit.Results && p.Status == 503 && time.Since(p.Done) < d {
			return true
		}
	}
	return false
}

// faultBeacons posts beacons as browsers do (sendBeacon: once, never
// retried) through its own proxy, each with its own pv, URL, LCP and size.
type faultBeacons struct {
	proxy *faultkit.Proxy
	stop  chan struct{}
	done  chan struct{}
	sent  atomic.Int64
}

// addSite registers the generator's site and returns its key.
func (e *faultEnv) addSite() string {
	e.t.Helper()
	site, err := store.NewSite("shop", []string{benchOrigin}, 1, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := store.AddSite(context.Background(), e.conn(), &site)
	if err != nil {
		e.t.Fatal(err)
	}
	return key
}

func (e *faultEnv) startBeacons(ups []string, key string, rate int) *faultBeacons {
	e.t.Helper()
	g := &faultBeacons{proxy: faultkit.NewProxy(e.t, ups, e.led.Tap), stop: make(chan struct{}), done: make(chan struct{})}
	go g.run(e.led, key, rate)
	e.t.Cleanup(g.halt)
	return g
}

func (g *faultBeacons) run(led *faultkit.Ledger, key string, rate int) {
	defer close(g.done)
	// A connection a beacon, so that the proxy spreads them over both
	// collectors.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		pv := fmt.Sprintf("0000fa17-0000-4000-8000-%012x", n)
		url := fmt.Sprintf("https://shop.example/p/%d", n)
		lcp := float64(n%5000) + 0.5
		body := strings.NewReplacer("SITEKEY", key, `"pv":"PV"`, `"pv":"`+pv+`"`, `"url":"https://shop.example/p"`, `"url":"`+url+`"`,
			`"lcp_ms":200`, fmt.Sprintf(`"lcp_ms":%v`, lcp), `"transfer_bytes":12345`, fmt.Sprintf(`"transfer_bytes":%d`, n)).Replace(benchBeacon)
		led.Produce(faultkit.Beacons, pv, "beacons", faultkit.BeaconSum(url, strconv.FormatFloat(lcp, 'g', -1, 64), strconv.Itoa(n)), int64(n))
		g.sent.Add(1)
		req, _ := http.NewRequest("POST", g.proxy.URL()+"/v1/beacon", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		req.Header.Set("Origin", benchOrigin)
		req.Header.Set("User-Agent", benchUA)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// halt stops the generator and waits for its last post.
func (g *faultBeacons) halt() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}
