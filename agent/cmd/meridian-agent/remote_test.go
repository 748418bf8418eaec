package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/agent/config"
	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/agent/sched"
	"github.com/meridian-net/meridian/internal/result"
	"github.com/meridian-net/meridian/internal/syncbuf"
)

// configServer serves one document with an ETag, as the collector does.
type configServer struct {
	mu         sync.Mutex
	doc        string // "" answers 404
	notMod     int
	heartbeats []Heartbeat
}

func (s *configServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case configPath:
		if s.doc == "" {
			http.NotFound(w, r)
			return
		}
		tag := `"` + strings.ReplaceAll(s.doc, "\n", "") + `"`
		if r.Header.Get("If-None-Match") == tag {
			s.notMod++
			w.WriteHeader(304)
			return
		}
		w.Header().Set("ETag", tag)
		io.WriteString(w, s.doc)
	case heartbeatPath:
		var hb Heartbeat
		json.NewDecoder(r.Body).Decode(&hb)
		s.heartbeats = append(s.heartbeats, hb)
		w.WriteHeader(204)
	}
}

func (s *configServer) set(doc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc = doc
}

func names(cs []probe.Check) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+"@"+c.Target)
	}
	return strings.Join(out, ",")
}

func TestRemoteConfig(t *testing.T) {
	srv := &configServer{}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cfg, err := config.Parse("agent.yml", []byte("agent: {name: t}\ncollector: "+hs.URL+"\ntoken: "+testToken+
		"\nchecks:\n  - {name: a, kind: tcp, target: \"127.0.0.1:1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	lastErr := &lastError{}
	logger := captureErrors(slog.New(slog.NewTextHandler(&log, nil)), lastErr)
	sc := sched.New(cfg.Checks, nil, sched.Options{Agent: "t", Logger: logger,
		Run: func(context.Context, *probe.Check) ([]*result.Result, error) { return nil, nil }})
	n, b := int64(0), int64(0)
	rc := newRemote(cfg, sc, func() (int64, int64) { return n, b }, lastErr, logger)
	ctx := context.Background()
	gauge := func() float64 { return metrics.GetOrCreateGauge("meridian_agent_config_version", nil).Get() }

	rc.poll(ctx) // 404: nothing remote
	if got := names(sc.Checks()); got != "a@127.0.0.1:1" || rc.Version() != cfg.Version {
		t.Fatalf("with no remote config: got %s version %d, want the file's check and version", got, rc.Version())
	}

	srv.set("checks:\n  - {name: b, kind: tcp, target: \"127.0.0.1:2\"}\n  - {name: a, kind: tcp, target: \"127.0.0.1:9\"}\n")
	rc.poll(ctx)
	if got := names(sc.Checks()); got != "a@127.0.0.1:1,b@127.0.0.1:2" {
		t.Errorf("got %s, want the file's a and the remote b (the remote a clashes)", got)
	}
	if !strings.Contains(log.String(), "refusing a remote check named like a check in the config file") {
		t.Errorf("the name clash was not logged:\n%s", log.String())
	}
	v1 := rc.Version()
	if v1 == cfg.Version || gauge() != float64(v1) {
		t.Errorf("got version %d (file %d), gauge %v: want a new version, exported", v1, cfg.Version, gauge())
	}
	rc.poll(ctx)
	if srv.notMod != 1 {
		t.Errorf("second poll: got %d 304s, want 1 (If-None-Match with the ETag)", srv.notMod)
	}

	srv.set("checks:\n  - {name: c, kind: tcp, target: \"127.0.0.1:3\", interval: 1ms}\n")
	rc.poll(ctx)
	if got := names(sc.Checks()); got != "a@127.0.0.1:1,b@127.0.0.1:2" || rc.Version() != v1 {
		t.Errorf("after a bad document: got %s version %d, want the previous set and version", got, rc.Version())
	}
	if e := lastErr.get(); !strings.Contains(e, "refusing the remote config") || !strings.Contains(e, "remote config:2: checks[0] (c): interval 1ms is below the minimum") {
		t.Errorf("got last error %q, want the refusal with remote config:line", e)
	}

	srv.set("checks:\n  - {name: c, kind: tcp, target: \"127.0.0.1:3\"}\n")
	rc.poll(ctx)
	if got := names(sc.Checks()); got != "a@127.0.0.1:1,c@127.0.0.1:3" {
		t.Errorf("got %s, want the new remote set replacing the old one", got)
	}

	srv.set("")
	rc.poll(ctx)
	if got := names(sc.Checks()); got != "a@127.0.0.1:1" || rc.Version() != cfg.Version || gauge() != float64(cfg.Version) {
		t.Errorf("after removal: got %s version %d, want the file's alone", got, rc.Version())
	}

	n, b = 12, 3456
	rc.heartbeat(ctx)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.heartbeats) != 1 {
		t.Fatalf("got %d heartbeats, want 1", len(srv.heartbeats))
	}
	hb := srv.heartbeats[0]
	if hb.Version != version || hb.SpoolResults != 12 || hb.SpoolBytes != 3456 || hb.Checks != 1 ||
		hb.ConfigVersion != uint64(cfg.Version) || !strings.Contains(hb.LastError, "refusing") {
		t.Errorf("got heartbeat %+v", hb)
	}
}

func TestRemoteRunStopsWithContext(t *testing.T) {
	srv := &configServer{}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cfg := &config.Config{Collector: hs.URL, Token: testToken, Checks: []probe.Check{{Name: "a", Kind: "tcp", Target: "x:1", Interval: time.Hour, Timeout: time.Second}}}
	sc := sched.New(cfg.Checks, nil, sched.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rc := newRemote(cfg, sc, func() (int64, int64) { return 0, 0 }, &lastError{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rc.run(ctx, 10*time.Millisecond, 10*time.Millisecond); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		n := len(srv.heartbeats)
		srv.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeats")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
