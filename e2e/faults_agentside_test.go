package e2e

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/e2e/faultkit"
	"github.com/meridian-net/meridian/internal/result"
)

// Scenarios where an agent fails: its spool fills, it dies mid-post, its
// clock is off.

// bulkyTLSTarget serves TLS with a certificate of 800 names: a tls check
// of it is a result of about 40 KB (the names are in it), so an agent's
// 1 MiB spool fills in seconds. It counts handshakes started (runs).
func bulkyTLSTarget(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spool-cap.faults.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	for i := range 800 {
		tmpl.DNSNames = append(tmpl.DNSNames, fmt.Sprintf("san-%04d.spool-cap.faults.meridian.test", i))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	runs := new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			runs.Add(1)
			go func() {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String(), runs
}

// faultAgentSpoolCap: agent 3 (spool capped at 1 MiB, the least its config
// takes) also runs four tls checks of bulky results, and its link is cut
// until its spool drops results: the oldest go, counted in
// meridian_agent_spool_dropped_total, and nothing else is lost.
func faultAgentSpoolCap(t *testing.T) {
	tlsAddr, tlsRuns := bulkyTLSTarget(t)
	var checks strings.Builder
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&checks, "  - {name: bulky-%d, kind: tls, target: %q, interval: 1s}\n", i, tlsAddr)
	}
	e := newFaultEnv(t, faultOptions{checks: map[int]string{2: checks.String()},
		ship: map[int]string{2: "ship: {interval: 200ms, max_spool_bytes: 1MiB}"}})
	a := e.agents[2]
	a.extraRuns = tlsRuns
	time.Sleep(2 * time.Second)
	a.proxy.Cut()
	time.Sleep(200 * time.Millisecond)
	ackedBefore := map[string]bool{}
	for id, it := range e.led.Items(faultkit.Results) {
		if it.Who == a.name && it.Acked {
			ackedBefore[id] = true
		}
	}
	if !faultWait(60*time.Second, func() bool { return e.agentMetric(2, "meridian_agent_spool_dropped_total") > 0 }) {
		t.Fatalf("agent-3's spool dropped nothing within 60s of its link cut")
	}
	time.Sleep(soak(2*time.Second, 30*time.Second))
	a.proxy.Heal()
	if !faultWait(30*time.Second, func() bool { return e.agentMetric(2, "meridian_agent_spool_results") <= 5 }) {
		t.Errorf("agent-3's spool did not drain within 30s of the link healing")
	}
	dropped := int(e.agentMetric(2, "meridian_agent_spool_dropped_total"))
	e.beforeTally = func(res faultkit.Stored) {
		checkSpoolDrops(t, e, a.name, dropped, ackedBefore, res)
	}
	e.finish()
}

// checkSpoolDrops checks an agent's drops at its spool cap against what
// ClickHouse stored, and accounts for them. With the link cut the agent's
// cursor stands still, so what it drops is the run of results right after
// it, in spool order: every result not stored must lie in one run of
// `dropped` results, older than every result it sent after the heal. Some
// of the run may be stored: the collector had them when the cut came, the
// agent never heard (it counts them, it cannot know).
func checkSpoolDrops(t *testing.T, e *faultEnv, agent string, dropped int, ackedBefore map[string]bool, res faultkit.Stored) {
	t.Helper()
	type spooled struct {
		order       int64
		stored, new bool
	}
	var all []spooled
	for id, it := range e.led.Items(faultkit.Results) {
		if it.Who != agent || it.Order < 0 {
			continue
		}
		_, stored := res.Copies[id]
		if !stored {
			e.accounted[id] = true
		}
		all = append(all, spooled{it.Order, stored, it.Acked && !ackedBefore[id]})
	}
	slices.SortFunc(all, func(a, b spooled) int { return cmp.Compare(a.order, b.order) })
	first, last, gone, lastGone := -1, -1, 0, int64(-1)
	for i, r := range all {
		if !r.stored {
			gone++
			if first < 0 {
				first = i
			}
			last, lastGone = i, r.order
		}
	}
	if gone == 0 || dropped < gone || last-first+1 > dropped {
		t.Errorf("%s: %d results not stored, over %d in spool order; meridian_agent_spool_dropped_total %d: want them all among the counted drops", agent, gone, last-first+1, dropped)
	}
	for _, r := range all {
		if r.new && r.order < lastGone {
			t.Errorf("%s dropped a result newer than one it sent after the heal: want the oldest dropped", agent)
			break
		}
	}
	e.note("%s dropped %d results at its 1 MiB cap (meridian_agent_spool_dropped_total), the oldest; %d of them never reached ClickHouse", agent, dropped, gone)
}

// faultAgentKillMidBatch: agent 1's proxy holds the collector's answers
// for 3 s; once a batch is in and answered, the agent is killed with
// SIGKILL before it hears, and restarted on the same data dir: it sends
// the batch again (Meridian-Replay: 1) and each result is counted once.
func faultAgentKillMidBatch(t *testing.T) {
	e := newFaultEnv(t, faultOptions{})
	time.Sleep(2 * time.Second)
	a := e.agents[0]
	a.proxy.Set(faultkit.Faults{RespDelay: 3 * time.Second})
	if !faultWait(10*time.Second, func() bool { return e.led.InFlight(a.name) > 0 }) {
		t.Fatalf("agent-1 posted nothing within 10s")
	}
	time.Sleep(1500 * time.Millisecond) // the collector answers; the proxy holds the answer
	killed := time.Now()
	a.proc.Kill()
	a.killed = true
	a.proxy.Heal()
	e.startAgent(0)
	time.Sleep(3 * time.Second)
	unheard := e.countPosts(func(p faultkit.Post) bool {
		return p.Who == a.name && p.Status/100 == 2 && p.Sent.Before(killed) && p.Done.After(killed)
	})
	replays := e.countPosts(func(p faultkit.Post) bool { return p.Who == a.name && p.Replay == "1" && p.Sent.After(killed) })
	if unheard == 0 || replays == 0 {
		t.Errorf("%d batches acknowledged but unheard at the kill, %d resent with Meridian-Replay: 1 after: want both", unheard, replays)
	}
	e.note("%d batch acknowledged but never heard by the killed agent-1; %d posts resent with Meridian-Replay: 1", unheard, replays)
	e.finish()
}

// faultAgentClockSkew: a real agent's clock cannot be skewed here (Go reads
// the time through the vDSO, so no faketime; time namespaces do not move
// the wall clock), so 20 results stamped 10 minutes ahead are posted with
// agent 2's token through its proxy, beside the agents' own: they are
// stored, and received_at - ts shows the skew.
func faultAgentClockSkew(t *testing.T) {
	e := newFaultEnv(t, faultOptions{})
	time.Sleep(time.Second)
	a := e.agents[1]
	ahead := time.Now().Add(10 * time.Minute)
	var nd []byte
	for i := range 20 {
		r := result.New(a.name, "skewed", result.KindTCP, "127.0.0.1:9", ahead.Add(time.Duration(i)*time.Millisecond))
		ms := 1.25
		r.OK, r.ConnectMs, r.TotalMs = true, &ms, &ms
		start := len(nd)
		var err error
		if nd, err = result.AppendNDJSON(nd, r); err != nil {
			t.Fatal(err)
		}
		id, sum, _ := faultkit.ResultSum(nd[start:], a.region)
		e.led.Produce(faultkit.Results, id, "test-as-"+a.name, sum, -1)
	}
	if code := postResults(t, a.proxy.URL(), a.token, nd); code != http.StatusOK {
		t.Fatalf("posting results 10 minutes ahead: got %d, want 200", code)
	}
	time.Sleep(time.Second)
	e.finish()
	var lo, hi, n int
	out := e.sql("SELECT min(toInt64(received_at) - toInt64(ts)), max(toInt64(received_at) - toInt64(ts)), count() FROM results WHERE check_name = 'skewed'")
	if _, err := fmt.Sscan(out, &lo, &hi, &n); err != nil || n != 20 || lo < -601 || hi > -590 {
		t.Errorf("received_at - ts of the skewed results: got %q (min, max, count), want about -600 s for all 20", out)
	}
	e.note("20 results 10 min ahead posted with agent-2's token (a process clock cannot be skewed here): stored, received_at - ts in [%d, %d] s", lo, hi)
}

// postResults posts NDJSON results as an agent does and returns the status.
func postResults(t *testing.T, base, token string, nd []byte) int {
	t.Helper()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(nd)
	zw.Close()
	req, _ := http.NewRequest("POST", base+"/v1/results", &zb)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
