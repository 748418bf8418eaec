package server_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/ship"
	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

// A collector whose journal cap (--spool-max-bytes) is smaller than an
// agent's batch answers 413, not 503 forever; the agent's shipper halves
// its batches until they fit, and every result is stored once. (With room
// for one batch at a time, every other post meets a full journal: 503,
// Retry-After 2.)
func TestBatchOverJournalCapIsSplit(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	token, err := store.AddAgent(ctx, conn, "gru-1", "sa-east")
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond, SpoolDir: t.TempDir(), SpoolMaxBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	srv := httptest.NewServer(server.New(server.Config{Agents: store.NewAgentCache(conn), Writer: w, Logger: slog.Default()}))
	defer srv.Close()

	q := &memQueue{}
	for i := range 150 {
		r := result.New("gru-1", "api", result.KindTCP, "127.0.0.1:443", time.Now())
		r.OK, r.ConnectMs = true, result.Ms(time.Duration(i)*time.Millisecond)
		q.items = append(q.items, r)
	}
	s := ship.New(q, ship.Options{Collector: srv.URL, Token: token, Batch: 150})
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	var n, ids uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(id) FROM results WHERE agent = 'gru-1'").Scan(&n, &ids); err != nil {
			t.Fatal(err)
		}
		if n >= 150 {
			break
		}
	}
	if st := s.Stats(); n != 150 || ids != 150 || st.Shipped != 150 || st.Rejected != 0 {
		t.Errorf("stored %d rows (%d ids), shipper %+v: want 150 stored once, none rejected", n, ids, st)
	}
}

// memQueue is the agent's queue in memory.
type memQueue struct{ items []*result.Result }

func (q *memQueue) Publish(rs []*result.Result) { q.items = append(q.items, rs...) }
func (q *memQueue) Peek(n int) []*result.Result { return q.items[:min(n, len(q.items))] }
func (q *memQueue) Ack(n int)                   { q.items = q.items[n:] }
