package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// On a cluster the writer inserts into the Distributed table, which passes
// each shard's rows to that shard (insert_distributed_sync): the shard's
// refusal comes back with its code, and the batch is bisected as on one
// node. A shard that took its part of a refused block keeps it, so halves
// send those rows again: every good row is stored (folded by
// ReplacingMergeTree), the refused one is dead-lettered, but inserts are
// not exactly once here.
func TestDeadLetterOnCluster(t *testing.T) {
	_, conns := chtest.NewCluster(t)
	ctx := context.Background()
	for _, c := range conns {
		if err := c.Exec(ctx, "ALTER TABLE results_local ADD COLUMN poison UInt8 MATERIALIZED throwIf(target = 'poison-target')"); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	w, err := store.NewWriter(conns[0], store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: dir, DrainEvery: 50 * time.Millisecond, Logf: tlog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows := tcpRows(1000, "batch")
	rows[500].Target = "poison-target"
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, tcpRows(10, "after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the journal to empty", func() bool {
		segs, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
		return len(segs) == 0
	})
	checkResults(t, conns[1], 1009)
	dead := deadLetters(t, dir)
	if len(dead) != 1 || dead[0].Code != 395 {
		t.Fatalf("got dead letters %+v, want one, code 395", dead)
	}
	var inserted uint64
	conns[1].QueryRow(ctx, "SELECT countMerge(n) FROM results_1m").Scan(&inserted)
	t.Logf("1009 good rows took %d inserts across the shards", inserted)
}
