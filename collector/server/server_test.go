package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

type env struct {
	conn  driver.Conn
	srv   *httptest.Server
	token string
}

func newEnv(t *testing.T, cfg server.Config) *env {
	t.Helper()
	_, conn := chtest.New(t)
	token, err := store.AddAgent(context.Background(), conn, "ams-1", "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	cfg.Agents, cfg.Writer = store.NewAgentCache(conn), w
	srv := httptest.NewServer(server.New(cfg))
	t.Cleanup(srv.Close)
	return &env{conn: conn, srv: srv, token: token}
}

func (e *env) post(t *testing.T, token, encoding string, body []byte, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/results", bytes.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) count(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM results FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func batch(t *testing.T, n int) []byte {
	t.Helper()
	var buf []byte
	for i := 0; i < n; i++ {
		r := result.New("claimed-name", "home", result.KindHTTP, "http://127.0.0.1/", time.Now())
		ms := float64(i)
		r.OK, r.TotalMs = true, &ms
		var err error
		if buf, err = result.AppendNDJSON(buf, r); err != nil {
			t.Fatal(err)
		}
	}
	return buf
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func TestResultsStoredOnceAndStamped(t *testing.T) {
	e := newEnv(t, server.Config{})
	body := gz(batch(t, 50))
	for i := 0; i < 2; i++ { // a retry of the same batch
		if code, msg := e.post(t, e.token, "gzip", body); code != 200 || !strings.Contains(msg, `"accepted":50`) {
			t.Fatalf("got %d %s, want 200 accepted 50", code, msg)
		}
	}
	if n := e.count(t); n != 50 {
		t.Errorf("got %d stored results after a replay, want 50", n)
	}
	var agent, region string
	e.conn.QueryRow(context.Background(), "SELECT any(agent), any(region) FROM results").Scan(&agent, &region)
	if agent != "ams-1" || region != "eu-west" {
		t.Errorf("got agent %q region %q, want the token's ams-1 / eu-west", agent, region)
	}
}

// TestReplayHeaderMarksRows: a batch the agent sends again (result.ReplayHeader)
// is stored marked replay = 1, the first post not; a bad value is a 400.
func TestReplayHeaderMarksRows(t *testing.T) {
	e := newEnv(t, server.Config{})
	body := gz(batch(t, 50))
	for _, replay := range []string{"", "1"} {
		if code, msg := e.post(t, e.token, "gzip", body, result.ReplayHeader, replay); code != 200 {
			t.Fatalf("%s=%q: got %d %s, want 200", result.ReplayHeader, replay, code, msg)
		}
	}
	if code, msg := e.post(t, e.token, "gzip", body, result.ReplayHeader, "yes"); code != 400 || !strings.Contains(msg, result.ReplayHeader) {
		t.Errorf("%s=yes: got %d %s, want 400 naming the header", result.ReplayHeader, code, msg)
	}
	var first, again uint64
	if err := e.conn.QueryRow(context.Background(), "SELECT countIf(replay = 0), countIf(replay = 1) FROM results").Scan(&first, &again); err != nil {
		t.Fatal(err)
	}
	if first != 50 || again != 50 {
		t.Errorf("got %d rows with replay = 0 and %d with replay = 1, want 50 and 50", first, again)
	}
}

func TestBadInputIsRejectedWholeWithReason(t *testing.T) {
	e := newEnv(t, server.Config{MaxBodyBytes: 64 << 10, MaxBatchBytes: 256 << 10})
	good := batch(t, 3)
	lines := strings.SplitAfter(string(good), "\n")
	bomb := gz(bytes.Repeat([]byte(" "), 1<<20)) // 1 MiB of spaces, ~1 KiB gzipped
	for _, tc := range []struct {
		name, token, enc string
		body             []byte
		code             int
		want             string
	}{
		{"no token", "", "", good, 401, "missing bearer token"},
		{"wrong token", "mrd_nope", "", good, 401, "unknown agent token"},
		{"unknown field", e.token, "", []byte(lines[0] + strings.Replace(lines[1], `"ok":true`, `"ok":true,"surprise":1`, 1)), 400, `line 2: field \"surprise\": unknown field`},
		{"wrong type", e.token, "", []byte(lines[0] + lines[1] + strings.Replace(lines[2], `"check":"home"`, `"check":7`, 1)), 400, `line 3: field \"check\"`},
		{"not json", e.token, "", []byte(lines[0] + "hello\n"), 400, "line 2: invalid JSON"},
		{"empty", e.token, "", nil, 400, "empty batch"},
		{"bad gzip", e.token, "gzip", good, 400, "cannot read gzip body"},
		{"unknown encoding", e.token, "br", good, 415, "unsupported Content-Encoding"},
		{"too big on the wire", e.token, "", bytes.Repeat(good, 200), 413, ""},
		{"gzip bomb", e.token, "gzip", bomb, 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := e.post(t, tc.token, tc.enc, tc.body)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Errorf("got %d %s, want %d containing %q", code, msg, tc.code, tc.want)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(msg), &body); err != nil || body["reason"] == "" {
				t.Errorf("got body %q, want JSON with a reason", msg)
			}
		})
	}
	if n := e.count(t); n != 0 {
		t.Errorf("got %d results stored from rejected batches, want 0", n)
	}
}

func TestHealthReadyMetricsScript(t *testing.T) {
	var notReady atomic.Bool
	notReady.Store(true)
	e := newEnv(t, server.Config{Ready: func(context.Context) error {
		if notReady.Load() {
			return io.ErrUnexpectedEOF
		}
		return nil
	}})
	get := func(path string) (int, string) {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz: got %d, want 200", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("readyz while storage is away: got %d, want 503", code)
	}
	notReady.Store(false)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("readyz: got %d, want 200", code)
	}
	e.post(t, e.token, "", batch(t, 1))
	if _, body := get("/metrics"); !strings.Contains(body, "meridian_ingest_results_total") {
		t.Errorf("metrics lack meridian_ingest_results_total")
	}
	if code, body := get("/rum.v1.js"); code != 200 || len(body) < 100 {
		t.Errorf("rum.v1.js: got %d and %d bytes", code, len(body))
	}
}

func TestAgentRateLimit(t *testing.T) {
	e := newEnv(t, server.Config{AgentRate: 0.001, AgentBurst: 2})
	body := batch(t, 1)
	var codes []int
	for i := 0; i < 3; i++ {
		code, _ := e.post(t, e.token, "", body)
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Errorf("got statuses %v, want 200 200 429 (burst 2)", codes)
	}
}
