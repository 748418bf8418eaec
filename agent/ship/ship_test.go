package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// fakeCollector answers each post with the next status in its script
// (200 once the script runs out) and keeps what it was sent.
type fakeCollector struct {
	t      *testing.T
	mu     sync.Mutex
	script []func(w http.ResponseWriter)
	posts  [][]result.Result
	replay []string // each post's result.ReplayHeader
}

func (c *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := c.t
	if r.URL.Path != "/v1/results" || r.Method != http.MethodPost {
		t.Errorf("got %s %s, want POST /v1/results", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("got Authorization %q, want Bearer s3cret", got)
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("got headers %v, want gzip NDJSON", r.Header)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		t.Errorf("body is not gzip: %v", err)
		return
	}
	res, err := result.DecodeNDJSON(zr)
	if err != nil {
		t.Errorf("cannot decode batch: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts = append(c.posts, res)
	c.replay = append(c.replay, r.Header.Get(result.ReplayHeader))
	if len(c.script) > 0 {
		next := c.script[0]
		c.script = c.script[1:]
		next(w)
	}
}

func (c *fakeCollector) ids(i int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, r := range c.posts[i] {
		ids = append(ids, r.ID)
	}
	return ids
}

func status(code int, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		w.Write([]byte("reason: line 3: field \"kind\": unknown kind"))
	}
}

// sliceQueue is the simplest Queue: what Publish adds, Ack removes.
type sliceQueue struct {
	mu    sync.Mutex
	items []*result.Result
}

func (q *sliceQueue) Publish(rs []*result.Result) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, rs...)
}

func (q *sliceQueue) Peek(n int) []*result.Result {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*result.Result(nil), q.items[:min(n, len(q.items))]...)
}

func (q *sliceQueue) Ack(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = q.items[n:]
}

func (q *sliceQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

var _ Queue = (*sliceQueue)(nil)

type harness struct {
	col    *fakeCollector
	q      *sliceQueue
	s      *Shipper
	sleeps []time.Duration
	logs   *bytes.Buffer
}

func newHarness(t *testing.T, batch int, script ...func(http.ResponseWriter)) *harness {
	t.Helper()
	h := &harness{col: &fakeCollector{t: t, script: script}, logs: &bytes.Buffer{}}
	srv := httptest.NewServer(h.col)
	t.Cleanup(srv.Close)
	logger := slog.New(slog.NewTextHandler(h.logs, nil))
	h.q = &sliceQueue{}
	h.s = New(h.q, Options{Collector: srv.URL + "/", Token: "s3cret", Batch: batch, Logger: logger,
		sleep: func(ctx context.Context, d time.Duration) error {
			h.sleeps = append(h.sleeps, d)
			return ctx.Err()
		}})
	return h
}

func results(n int) []*result.Result {
	var rs []*result.Result
	for i := range n {
		r := result.New("a", "c"+string(rune('a'+i%26)), result.KindHTTP, "http://x/", time.Now())
		r.OK = true
		rs = append(rs, r)
	}
	return rs
}

func flush(t *testing.T, s *Shipper) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestShipInBatches(t *testing.T) {
	h := newHarness(t, 2)
	h.q.Publish(results(5))
	flush(t, h.s)
	if len(h.col.posts) != 3 || len(h.col.posts[0]) != 2 || len(h.col.posts[2]) != 1 {
		t.Errorf("got %d posts, want batches of 2, 2, 1", len(h.col.posts))
	}
	if st := h.s.Stats(); st.Shipped != 5 || st.FailedPosts != 0 || h.q.Len() != 0 {
		t.Errorf("got %+v and %d queued, want 5 shipped and an empty queue", st, h.q.Len())
	}
	if len(h.sleeps) != 0 {
		t.Errorf("got sleeps %v, want none", h.sleeps)
	}
}

func TestRetryKeepsIDs(t *testing.T) {
	h := newHarness(t, 10, status(500), status(502))
	h.q.Publish(results(3))
	flush(t, h.s)
	if len(h.col.posts) != 3 {
		t.Fatalf("got %d posts, want 3 (two failures, one success)", len(h.col.posts))
	}
	first := strings.Join(h.col.ids(0), ",")
	for i := 1; i < 3; i++ {
		if got := strings.Join(h.col.ids(i), ","); got != first {
			t.Errorf("post %d carried ids %s, want the same as the first: %s", i, got, first)
		}
	}
	if len(h.sleeps) != 2 || h.sleeps[0] > time.Second || h.sleeps[1] < time.Second || h.sleeps[1] > 2*time.Second {
		t.Errorf("got backoff sleeps %v, want one up to 1s then one in [1s, 2s]", h.sleeps)
	}
	if st := h.s.Stats(); st.Shipped != 3 || st.FailedPosts != 2 {
		t.Errorf("got %+v, want 3 shipped after 2 failed posts", st)
	}
	if n := strings.Count(h.logs.String(), "cannot ship results"); n != 1 {
		t.Errorf("got %d failure log lines, want 1 (rate-limited):\n%s", n, h.logs)
	}
	if !strings.Contains(h.logs.String(), "shipping results again") {
		t.Errorf("got logs %s, want a line saying shipping recovered", h.logs)
	}
}

// TestRetryIsMarkedReplay: a batch posted again after a failure says so
// (the first post may have landed); the next new batch does not; results
// spooled before the shipper started are marked too.
func TestRetryIsMarkedReplay(t *testing.T) {
	h := newHarness(t, 2, status(500))
	h.q.Publish(results(4))
	flush(t, h.s)
	if got := strings.Join(h.col.replay, ","); got != ",1," {
		t.Errorf("got %s per post, want the first post unmarked, its retry marked, the next batch unmarked", got)
	}

	h = newHarness(t, 2)
	h.q.Publish(results(3))
	h.s = New(h.q, h.s.opts) // a restart: three results were spooled before it
	flush(t, h.s)
	if got := strings.Join(h.col.replay, ","); got != "1,1" {
		t.Errorf("after a restart: got %q per post, want both batches marked", got)
	}
}

func TestRetryAfter(t *testing.T) {
	h := newHarness(t, 10, status(429, "Retry-After", "7"), status(503, "Retry-After", "120"))
	h.q.Publish(results(1))
	flush(t, h.s)
	between := func(d, lo time.Duration) bool { return d >= lo && d <= lo+lo/2 }
	if len(h.sleeps) != 2 || !between(h.sleeps[0], 7*time.Second) || !between(h.sleeps[1], 2*time.Minute) {
		t.Errorf("got sleeps %v, want 7s and 2m from Retry-After, each plus up to half again", h.sleeps)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := parseRetryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now); d != 30*time.Second {
		t.Errorf("got %v for an HTTP-date Retry-After, want 30s", d)
	}
}

func TestBadBatchIsDropped(t *testing.T) {
	h := newHarness(t, 2, status(400))
	h.q.Publish(results(3))
	flush(t, h.s)
	if len(h.col.posts) != 2 || h.q.Len() != 0 {
		t.Errorf("got %d posts and %d queued, want the rejected batch dropped and the next shipped", len(h.col.posts), h.q.Len())
	}
	if st := h.s.Stats(); st.Rejected != 2 || st.Shipped != 1 {
		t.Errorf("got %+v, want 2 rejected and 1 shipped", st)
	}
	if !strings.Contains(h.logs.String(), `unknown kind`) {
		t.Errorf("got logs %s, want the collector's reason", h.logs)
	}
}

// A 413 splits the batch instead of dropping it: halves are sent at once,
// without a back-off, and whole batches come back after the next success.
// Only a single result the collector refuses as too large is dropped.
func TestTooLargeBatchIsSplit(t *testing.T) {
	h := newHarness(t, 8, status(413), status(413), status(200), status(413))
	h.q.Publish(results(9))
	flush(t, h.s)
	var sizes []int
	for _, p := range h.col.posts {
		sizes = append(sizes, len(p))
	}
	// 8 refused, 4 refused, 2 stored, 4 (grown back) refused, then 2, 4
	// (grown again) and the last 1 stored: 9 results, each stored once.
	if got, want := fmt.Sprint(sizes), "[8 4 2 4 2 4 1]"; got != want {
		t.Errorf("post sizes %s, want %s", got, want)
	}
	if st := h.s.Stats(); st.Shipped != 9 || st.Rejected != 0 || h.q.Len() != 0 || len(h.sleeps) != 0 {
		t.Errorf("got %+v, %d queued, sleeps %v; want 9 shipped, none rejected, no back-off", st, h.q.Len(), h.sleeps)
	}
	one := newHarness(t, 8, status(413))
	one.q.Publish(results(1))
	flush(t, one.s)
	if st := one.s.Stats(); st.Rejected != 1 || one.q.Len() != 0 {
		t.Errorf("a single result refused as too large: got %+v, %d queued; want it dropped as rejected", st, one.q.Len())
	}
}

func TestAuthFailureIsRetried(t *testing.T) {
	h := newHarness(t, 10, status(401), status(403), status(408))
	h.q.Publish(results(2))
	flush(t, h.s)
	if st := h.s.Stats(); st.Shipped != 2 || st.Rejected != 0 || st.FailedPosts != 3 {
		t.Errorf("got %+v, want 2 shipped after 3 failed posts and none dropped", st)
	}
	if !strings.Contains(h.logs.String(), "level=ERROR") || !strings.Contains(h.logs.String(), "MERIDIAN_TOKEN") {
		t.Errorf("got logs %s, want a loud line naming the token fix", h.logs)
	}
}

func TestInvalidResultLeftOut(t *testing.T) {
	h := newHarness(t, 10)
	rs := results(3)
	rs[1].Kind = "smtp"
	h.q.Publish(rs)
	flush(t, h.s)
	if len(h.col.posts) != 1 || len(h.col.posts[0]) != 2 || h.q.Len() != 0 {
		t.Errorf("got posts %v, want one post of the 2 valid results", h.col.posts)
	}
	if st := h.s.Stats(); st.Invalid != 1 {
		t.Errorf("got %+v, want 1 invalid", st)
	}
}

func TestFlushGivesUp(t *testing.T) {
	h := newHarness(t, 10, status(500), status(500), status(500))
	h.q.Publish(results(1))
	ctx, cancel := context.WithCancel(context.Background())
	h.s.opts.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	if err := h.s.Flush(ctx); err == nil {
		t.Errorf("got no error from a flush that could not finish")
	}
	if h.q.Len() != 1 {
		t.Errorf("got %d queued, want the result kept", h.q.Len())
	}
}

func TestRunShipsUntilCancelled(t *testing.T) {
	h := newHarness(t, 10)
	h.q.Publish(results(2))
	ctx, cancel := context.WithCancel(context.Background())
	h.s.opts.sleep = func(ctx context.Context, d time.Duration) error {
		if d != DefaultInterval {
			t.Errorf("got a wait of %v between ships, want the interval %v", d, DefaultInterval)
		}
		cancel()
		return ctx.Err()
	}
	h.s.Run(ctx)
	if h.s.Stats().Shipped != 2 {
		t.Errorf("got %+v, want 2 shipped", h.s.Stats())
	}
}

func TestBackoffGrowsToCap(t *testing.T) {
	s := New(&sliceQueue{}, Options{Interval: time.Second, MaxBackoff: 8 * time.Second})
	for _, tc := range []struct {
		fails  int
		lo, hi time.Duration
	}{{1, 500 * time.Millisecond, time.Second}, {2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second}, {10, 4 * time.Second, 8 * time.Second}} {
		s.fails = tc.fails
		for range 20 {
			if d := s.backoff(&retryError{}); d < tc.lo || d > tc.hi {
				t.Errorf("after %d failures got backoff %v, want it in [%v, %v]", tc.fails, d, tc.lo, tc.hi)
			}
		}
	}
}
