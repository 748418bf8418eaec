package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

const testToken = "tok-1"

// fakeCollector takes POST /v1/results like the real one: bearer token,
// gzip NDJSON decoded with result.DecodeNDJSON. Answer decides each reply
// once the batch is decoded (nil: 200); only 2xx batches count as received.
type fakeCollector struct {
	t      *testing.T
	answer func(w http.ResponseWriter, r *http.Request, rs []result.Result) (accepted bool)

	mu     sync.Mutex
	ids    map[string]int // id -> times received in a 2xx batch
	got    []result.Result
	posts  int
	badTok int
}

func newCollector(t *testing.T) (*fakeCollector, string) {
	t.Helper()
	c := &fakeCollector{t: t, ids: map[string]int{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func (c *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/agent/") { // remote config and heartbeats: none here
		http.NotFound(w, r)
		return
	}
	if r.URL.Path != "/v1/results" || r.Header.Get("Authorization") != "Bearer "+testToken {
		c.mu.Lock()
		c.badTok++
		c.mu.Unlock()
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rs, err := result.DecodeNDJSON(zr)
	if err != nil {
		c.t.Errorf("collector cannot decode a batch: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	c.mu.Lock()
	c.posts++
	answer := c.answer
	c.mu.Unlock()
	if answer != nil && !answer(w, r, rs) {
		return
	}
	c.record(rs)
}

// record counts rs as received.
func (c *fakeCollector) record(rs []result.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, res := range rs {
		c.ids[res.ID]++
		c.got = append(c.got, res)
	}
}

func (c *fakeCollector) setAnswer(f func(w http.ResponseWriter, r *http.Request, rs []result.Result) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answer = f
}

// received returns the distinct ids received so far and how many results
// arrived in all, duplicates included.
func (c *fakeCollector) received() (ids map[string]bool, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids = map[string]bool{}
	for id, n := range c.ids {
		ids[id] = true
		total += n
	}
	return ids, total
}

// unavailable answers 503 (with Retry-After when secs > 0): the collector
// is down or shedding load.
func unavailable(secs int) func(http.ResponseWriter, *http.Request, []result.Result) bool {
	return func(w http.ResponseWriter, _ *http.Request, _ []result.Result) bool {
		if secs > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(secs))
		}
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return false
	}
}

// targets serves the checks' targets and counts the requests per path:
// each run of an http check is one request, so hits count what was measured.
type targets struct {
	URL  string
	mu   sync.Mutex
	hits map[string]int
	// Requests to /slow hang until the client gives up; slowStarted is
	// signalled when one arrives.
	slowStarted chan struct{}
}

func newTargets(t *testing.T) *targets {
	t.Helper()
	tg := &targets{hits: map[string]int{}, slowStarted: make(chan struct{}, 10)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.mu.Lock()
		tg.hits[r.URL.Path]++
		tg.mu.Unlock()
		if r.URL.Path == "/slow" {
			tg.slowStarted <- struct{}{}
			<-r.Context().Done()
			return
		}
		fmt.Fprint(w, "hello")
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(srv.CloseClientConnections) // the slow handler waits for its client
	tg.URL = srv.URL
	return tg
}

func (tg *targets) count(path string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.hits[path]
}

func (tg *targets) total() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	n := 0
	for _, v := range tg.hits {
		n += v
	}
	return n
}

// writeConfig writes an agent config with the given checks (YAML flow
// mappings) and returns its path.
func writeConfig(t *testing.T, dir, agent string, checks ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "agent: {name: %s}\nship: {interval: 50ms, batch: 20}\nchecks:\n", agent)
	for _, c := range checks {
		fmt.Fprintf(&b, "  - %s\n", c)
	}
	path := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// spooledIDs reads the ids of every complete line in the spool's segment
// files, as a crashed agent left them (nothing is acked in these tests
// while the agent runs against a down collector).
func spooledIDs(t *testing.T, dataDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "spool", "*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(b) {
			if !bytes.HasSuffix(line, []byte("\n")) {
				continue // torn by the kill: it was never acknowledged as appended
			}
			var r result.Result
			if err := result.Unmarshal(line, &r); err != nil {
				t.Fatalf("%s: spooled line does not decode: %v\n%s", f, err, line)
			}
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s\nagent log:\n%s", d, what, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
