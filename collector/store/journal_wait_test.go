package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A write whose fsync does not come back (a hung disk: here nothing
// commits it) fails with ErrStalled once MaxWait has gone by, never
// before; a write answered in time gets its answer.
func TestJournalWriteGivesUpOnAStalledDisk(t *testing.T) {
	stalled := func() *journal[Row] {
		return &journal[Row]{what: "results", maxBytes: 1 << 20, opt: WriterOptions{MaxWait: time.Second},
			codec: jsonCodec[Row](), in: make(chan *journalReq[Row], 1), bufs: newLineBufs()}
	}
	j := stalled()
	start := time.Now()
	err := j.write(context.Background(), []Row{{Region: "eu"}})
	if took := time.Since(start); !errors.Is(err, ErrStalled) || took < time.Second {
		t.Fatalf("got %v after %v, want ErrStalled after at least 1s", err, took)
	}

	j = stalled()
	go func() {
		req := <-j.in
		time.Sleep(300 * time.Millisecond)
		req.done <- nil
	}()
	if err := j.write(context.Background(), []Row{{Region: "eu"}}); err != nil {
		t.Fatalf("a write made durable in time: got %v, want nil", err)
	}
}
