package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestInsertedAgainIsMarkedReplay: an insert that landed but whose
// acknowledgement was lost is inserted again from the journal, and that
// copy is marked replay = 1, so queries count each row once without FINAL
// (query/rows.go): one copy of each row with replay = 0, one with 1.
func TestInsertedAgainIsMarkedReplay(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	var calls atomic.Int32
	w, err := store.NewWriterWrapped(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: dir, DrainEvery: 50 * time.Millisecond, Logf: tlog(t)},
		func(rows []store.Row, insert func([]store.Row) error) error {
			err := insert(rows)
			if calls.Add(1) == 1 && err == nil {
				return errors.New("connection reset after the insert: its outcome is unknown")
			}
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(ctx, tcpRows(100, "x")); err != nil {
		t.Fatal(err)
	}
	waitRows(t, conn, dir, 200)
	var first, again uint64
	if err := conn.QueryRow(ctx, "SELECT countIf(replay = 0), countIf(replay = 1) FROM results").Scan(&first, &again); err != nil {
		t.Fatal(err)
	}
	if first != 100 || again != 100 {
		t.Errorf("got %d rows with replay = 0 and %d with replay = 1, want 100 of each", first, again)
	}
}
