package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/syncbuf"
)

// hostileEnv is the collector as `meridian serve` wires it, every route on,
// over a fresh migrated database on the test ClickHouse. Writers run
// without a journal so a row is in ClickHouse by the time its 2xx arrives
// and a case can count rows right after its response.
type hostileEnv struct {
	conn driver.Conn
	srv  *httptest.Server
	logs *syncbuf.Buffer // everything the collector logs (slog and net/http)

	agentToken, readerToken, siteKey string
}

// hostileAgentConfig is ams-1's remote config: GET /v1/agent/config serves it.
const hostileAgentConfig = "checks:\n  - {name: api, kind: tcp, target: \"127.0.0.1:1\", interval: 5s}\n"

const hostilePolicy = `pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20]}
`

// fakeToken looks like an agent token and belongs to no one; wrongToken
// cases send it, and like every real token it must never be logged.
const fakeToken = store.TokenPrefix + "hostileNotARealToken0123456789abcdefghijklm"

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	_, conn := chtest.New(t)
	ctx := context.Background()
	e := &hostileEnv{conn: conn, logs: &syncbuf.Buffer{}}
	var err error
	if e.agentToken, err = store.AddAgent(ctx, conn, "ams-1", "eu-west"); err != nil {
		t.Fatal(err)
	}
	if e.readerToken, err = store.AddToken(ctx, conn, "pdns", store.RoleSteeringReader); err != nil {
		t.Fatal(err)
	}
	site, err := store.NewSite("shop", []string{shopOrigin}, 1, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.siteKey, err = store.AddSite(ctx, conn, &site); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetAgentConfig(ctx, conn, "ams-1", hostileAgentConfig); err != nil {
		t.Fatal(err)
	}
	publishHostileDecision(t, conn)
	e.srv = httptest.NewUnstartedServer(server.New(e.config(t)))
	e.srv.Config.ErrorLog = log.New(e.logs, "http: ", 0)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *hostileEnv) config(t *testing.T) server.Config {
	t.Helper()
	logf := func(format string, args ...any) { fmt.Fprintf(e.logs, format+"\n", args...) }
	results, err := store.NewWriter(e.conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(results.Close)
	beacons, err := store.NewBeaconWriter(e.conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(beacons.Close)
	conn := e.conn
	return server.Config{
		Agents: store.NewAgentCache(conn), Writer: results,
		// Below the defaults (4 MiB, 32 MiB) so that a gzip bomb is cut
		// after 4 MiB, not 32: the same code path, a tenth of the time.
		MaxBodyBytes:  1 << 20,
		MaxBatchBytes: 4 << 20,
		Ready:         func(ctx context.Context) error { return conn.Ping(ctx) },
		Logger:        slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AgentRate:     1e6, // rate limits are not what this suite attacks
		AgentBurst:    1e6,
		Sites:         store.NewSiteCache(conn),
		Beacons:       beacons,
		AgentConfigs:  store.NewAgentConfigCache(conn),
		Heartbeats:    syncHeartbeats{conn},
		Readers:       store.NewTokenCache(conn),
		Decisions:     func(ctx context.Context) (*steering.Published, error) { return steering.Latest(ctx, conn) },
		SteeringPolicy: func(ctx context.Context) (*steering.Policy, error) {
			p, _, _, err := steering.LoadPolicy(ctx, conn)
			return p, err
		},
	}
}

func publishHostileDecision(t *testing.T, conn driver.Conn) {
	t.Helper()
	ctx := context.Background()
	_, version, err := steering.SetPolicy(ctx, conn, "hostile.yml", []byte(hostilePolicy))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	d := &steering.Decision{Pool: "www", DNSName: "www.shop.example.", TTL: 30, ComputedAt: at,
		Scopes: []steering.ScopeDecision{{Scope: "global", FiguresFrom: "global", Rule: steering.RuleScore, ChangedAt: at,
			Members: []steering.MemberDecision{
				{Name: "cdn-a", Weight: 70, State: steering.StateUp}, {Name: "cdn-b", Weight: 30, State: steering.StateUp}}}}}
	if err := steering.Publish(ctx, conn, d, &steering.State{}, version); err != nil {
		t.Fatal(err)
	}
}

// syncHeartbeats stores each heartbeat at once with the store's own insert
// (store.HeartbeatWriter batches them every interval), so a case can count
// agent_heartbeats right after its response.
type syncHeartbeats struct{ conn driver.Conn }

func (h syncHeartbeats) Add(hb store.Heartbeat) bool {
	return store.WriteHeartbeats(context.Background(), h.conn, []store.Heartbeat{hb}) == nil
}

// hreq is one request of a case. raw, when set, is written to the socket
// as is (for what net/http's client refuses to send: NUL in a header).
type hreq struct {
	method, path string
	header       map[string]string
	body         []byte
	raw          string
}

type hresp struct {
	code   int
	header http.Header
	body   string
}

func (e *hostileEnv) send(t *testing.T, r hreq) hresp {
	t.Helper()
	if r.raw != "" {
		return e.sendRaw(t, r.raw)
	}
	req, err := http.NewRequest(r.method, e.srv.URL+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("cannot make request %s %.80s: %v", r.method, r.path, err)
	}
	for k, v := range r.header {
		for _, one := range strings.Split(v, "\x1e") { // a record separator sends the header repeated
			req.Header.Add(k, one)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %.80s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hresp{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (e *hostileEnv) sendRaw(t *testing.T, raw string) hresp {
	t.Helper()
	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Written while the answer is read: the server may answer (413, 431)
	// and close before it has read all of an oversized request.
	go io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("raw request %.60q: %v", raw, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hresp{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// counts returns the rows of every table of the database, in one query.
func (e *hostileEnv) counts(t *testing.T) map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	rows, err := e.conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			t.Fatal(err)
		}
		// Views and rollups (AggregatingMergeTree, fed by views) follow the
		// tables counted here. A ReplacingMergeTree is counted as queries
		// read it (FINAL): a merge may fold a replayed row at any moment.
		if strings.HasSuffix(engine, "View") || strings.HasPrefix(name, ".") || strings.HasPrefix(engine, "Aggregating") {
			continue
		}
		final := ""
		if strings.HasPrefix(engine, "Replacing") {
			final = " FINAL"
		}
		// Identifiers cannot be bound; these come from system.tables.
		parts = append(parts, "SELECT '"+name+"' AS t, count() AS n FROM "+name+final)
	}
	rows.Close()
	sort.Strings(parts)
	out := map[string]uint64{}
	rows, err = e.conn.Query(ctx, strings.Join(parts, " UNION ALL "))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n uint64
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	if len(out) < 10 {
		t.Fatalf("counted %d tables (%v); the schema has more: the query misses some", len(out), out)
	}
	return out
}

// healthy checks the collector still answers and never panicked.
func (e *hostileEnv) healthy(t *testing.T) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := e.send(t, hreq{method: "GET", path: path}); r.code != http.StatusOK {
			t.Fatalf("after the case, GET %s: got %d %s, want 200", path, r.code, r.body)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, "panic") {
		t.Fatalf("the collector panicked:\n%s", logs)
	}
}

// secrets are the token values the suite sends: none may be logged.
func (e *hostileEnv) secrets() []string {
	return []string{e.agentToken, e.readerToken, fakeToken}
}
