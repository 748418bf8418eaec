package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
)

// directConfigs reads agent_configs without the cache's TTL.
type directConfigs struct{ conn driver.Conn }

func (d *directConfigs) AgentConfig(ctx context.Context, agent string) (store.AgentConfig, bool, error) {
	return store.GetAgentConfig(ctx, d.conn, agent)
}

// lateHeartbeats forwards to a writer made once the test database exists.
type lateHeartbeats struct{ w *store.HeartbeatWriter }

func (l *lateHeartbeats) Add(hb store.Heartbeat) bool { return l.w.Add(hb) }

func (e *env) do(t *testing.T, method, path, token string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAgentConfigEndpoint(t *testing.T) {
	cfgs := &directConfigs{}
	e := newEnv(t, server.Config{AgentConfigs: cfgs})
	cfgs.conn = e.conn
	ctx := context.Background()

	for _, tok := range []string{"", "mrd_wrong"} {
		if resp, body := e.do(t, "GET", "/v1/agent/config", tok, nil, ""); resp.StatusCode != 401 {
			t.Errorf("token %q: got %d %s, want 401", tok, resp.StatusCode, body)
		}
	}
	if resp, body := e.do(t, "GET", "/v1/agent/config", e.token, nil, ""); resp.StatusCode != 404 || !strings.Contains(body, "agents config set") {
		t.Errorf("no config yet: got %d %s, want 404 saying how to set one", resp.StatusCode, body)
	}

	doc := "checks:\n  - {name: api, kind: tcp, target: \"127.0.0.1:1\", interval: 5s}\n"
	if _, err := store.SetAgentConfig(ctx, e.conn, "ams-1", doc); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(doc))
	wantTag := `"` + hex.EncodeToString(sum[:]) + `"`
	resp, body := e.do(t, "GET", "/v1/agent/config", e.token, nil, "")
	if resp.StatusCode != 200 || body != doc || resp.Header.Get("ETag") != wantTag ||
		resp.Header.Get("Content-Type") != "application/yaml" || resp.Header.Get("X-Meridian-Config-Version") != "1" {
		t.Fatalf("got %d %v %q, want 200, the document, ETag %s and version 1", resp.StatusCode, resp.Header, body, wantTag)
	}
	for _, inm := range []string{wantTag, "W/" + wantTag, `"other", ` + wantTag, "*"} {
		resp, body = e.do(t, "GET", "/v1/agent/config", e.token, map[string]string{"If-None-Match": inm}, "")
		if resp.StatusCode != 304 || body != "" || resp.Header.Get("ETag") != wantTag {
			t.Errorf("If-None-Match %s: got %d %q, want 304 with the ETag and no body", inm, resp.StatusCode, body)
		}
	}

	doc2 := strings.Replace(doc, "5s", "10s", 1)
	if _, err := store.SetAgentConfig(ctx, e.conn, "ams-1", doc2); err != nil {
		t.Fatal(err)
	}
	resp, body = e.do(t, "GET", "/v1/agent/config", e.token, map[string]string{"If-None-Match": wantTag}, "")
	if resp.StatusCode != 200 || body != doc2 || resp.Header.Get("ETag") == wantTag || resp.Header.Get("X-Meridian-Config-Version") != "2" {
		t.Errorf("after a change: got %d %q etag %s, want 200 with the new document and a new ETag", resp.StatusCode, body, resp.Header.Get("ETag"))
	}

	// Another agent's token sees its own (absent) config, never ams-1's.
	tok2, err := store.AddAgent(ctx, e.conn, "gru-1", "sa-east")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the agent cache reloads on a miss at most once a second
	if resp, body := e.do(t, "GET", "/v1/agent/config", tok2, nil, ""); resp.StatusCode != 404 {
		t.Errorf("gru-1: got %d %q, want 404", resp.StatusCode, body)
	}

	if _, err := store.SetAgentConfig(ctx, e.conn, "ams-1", ""); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.do(t, "GET", "/v1/agent/config", e.token, nil, ""); resp.StatusCode != 404 {
		t.Errorf("after removal: got %d, want 404", resp.StatusCode)
	}
}

func TestHeartbeatEndpoint(t *testing.T) {
	hbs := &lateHeartbeats{}
	e := newEnv(t, server.Config{Heartbeats: hbs})
	hbs.w = store.NewHeartbeatWriter(e.conn, 10*time.Millisecond, t.Logf)

	if resp, _ := e.do(t, "POST", "/v1/agent/heartbeat", "", nil, "{}"); resp.StatusCode != 401 {
		t.Errorf("no token: got %d, want 401", resp.StatusCode)
	}
	if resp, _ := e.do(t, "POST", "/v1/agent/heartbeat", e.token, nil, "{not json"); resp.StatusCode != 400 {
		t.Errorf("bad JSON: got %d, want 400", resp.StatusCode)
	}
	big := `{"version":"v1","last_error":"` + strings.Repeat("x", 70<<10) + `"}`
	if resp, _ := e.do(t, "POST", "/v1/agent/heartbeat", e.token, nil, big); resp.StatusCode != 413 {
		t.Errorf("70 KiB heartbeat: got %d, want 413", resp.StatusCode)
	}
	body := `{"version":"v1.2.3","uptime_s":61,"spool_results":7,"spool_bytes":2048,"last_error":"` +
		strings.Repeat("é", 600) + `","config_version":99,"checks":4,"from_the_future":true}`
	if resp, b := e.do(t, "POST", "/v1/agent/heartbeat", e.token, nil, body); resp.StatusCode != 204 {
		t.Fatalf("got %d %s, want 204", resp.StatusCode, b)
	}
	hbs.w.Close()
	got, err := store.LatestHeartbeats(context.Background(), e.conn)
	if err != nil {
		t.Fatal(err)
	}
	hb := got["ams-1"]
	if hb.Version != "v1.2.3" || hb.UptimeS != 61 || hb.SpoolResults != 7 || hb.SpoolBytes != 2048 ||
		hb.ConfigVersion != 99 || hb.Checks != 4 || time.Since(hb.TS) > time.Minute {
		t.Errorf("got %+v, want the posted figures stamped with the collector's time", hb)
	}
	if len(hb.LastError) > 1024 || !bytes.HasPrefix([]byte(hb.LastError), []byte("éé")) || strings.ToValidUTF8(hb.LastError, "?") != hb.LastError {
		t.Errorf("last_error: got %d bytes, want at most 1024 of valid UTF-8", len(hb.LastError))
	}
}
