package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func (s *Spool) syncCount() (syncs int, dirty bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs, s.dirty
}

// TestSyncShared: appends close together share one fsync, which Next does
// before it hands anything out.
func TestSyncShared(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{SyncDelay: time.Hour})
	defer s.Close()
	for range 3 {
		if err := s.Append(newResults(2)); err != nil {
			t.Fatal(err)
		}
	}
	if syncs, dirty := s.syncCount(); syncs != 0 || !dirty {
		t.Fatalf("after 3 appends: %d fsyncs (dirty %v), want 0 and dirty", syncs, dirty)
	}
	if b, err := s.Next(10); err != nil || b.Len() != 6 {
		t.Fatalf("Next: %d results, %v; want 6", b.Len(), err)
	}
	if syncs, dirty := s.syncCount(); syncs != 1 || dirty {
		t.Fatalf("after Next: %d fsyncs (dirty %v), want 1 and clean", syncs, dirty)
	}
	s.Next(10)
	if syncs, _ := s.syncCount(); syncs != 1 {
		t.Fatalf("a second Next with nothing new: %d fsyncs, want still 1", syncs)
	}
}

// TestSyncDelayed: with no Next, the delayed fsync comes by itself.
func TestSyncDelayed(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{SyncDelay: time.Millisecond})
	defer s.Close()
	if err := s.Append(newResults(1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		syncs, dirty := s.syncCount()
		if syncs == 1 && !dirty {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after an append with a 1ms sync delay: %d fsyncs (dirty %v), want 1 and clean", syncs, dirty)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSyncEachAppend: a negative SyncDelay fsyncs every batch in Append.
func TestSyncEachAppend(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{SyncDelay: -1})
	defer s.Close()
	for i := range 3 {
		if err := s.Append(newResults(1)); err != nil {
			t.Fatal(err)
		}
		if syncs, dirty := s.syncCount(); syncs != i+1 || dirty {
			t.Fatalf("after append %d: %d fsyncs (dirty %v), want %d and clean", i+1, syncs, dirty, i+1)
		}
	}
}

// TestSyncOnClose: Close fsyncs what waits, and a reopen has it.
func TestSyncOnClose(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{SyncDelay: time.Hour})
	rs := newResults(4)
	if err := s.Append(rs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if syncs, dirty := s.syncCount(); syncs != 1 || dirty {
		t.Fatalf("after Close: %d fsyncs (dirty %v), want 1 and clean", syncs, dirty)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	equalIDs(t, "after Close and reopen", drain(t, s, 10), idsOf(rs))
}

// TestCursorInPlace: the cursor is one fixed-size record, rewritten in
// place, that a reopen reads back; an old-style cursor (unpadded JSON, as
// agents before it wrote) still opens where it says; one that fails its
// check (torn into other digits) makes the spool resend everything.
func TestCursorInPlace(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	rs := newResults(5)
	if err := s.Append(rs); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 1} {
		b, err := s.Next(n)
		if err == nil {
			err = s.Ack(b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if err != nil || len(b) != cursorBytes || b[cursorBytes-1] != '\n' {
		t.Fatalf("cursor file %q (%v): want %d bytes ending in a newline", b, err, cursorBytes)
	}
	s = mustOpen(t, dir, Options{})
	equalIDs(t, "after two acks and reopen", drain(t, s, 10), idsOf(rs[3:]))
	s.Close()

	old := fmt.Appendf(nil, `{"segment":%d,"offset":%d}`+"\n", s.cur.seq, s.cur.off)
	if err := os.WriteFile(filepath.Join(dir, cursorName), old, 0o640); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	if got := drain(t, s, 10); len(got) != 0 {
		t.Fatalf("an old-style cursor %q past everything: got %d results again, want 0", old, len(got))
	}
	s.Close()

	torn := fmt.Appendf(nil, `{"segment":%d,"offset":%d,"check":%d}`+"\n", s.cur.seq, s.cur.off, cursorCheck(s.cur.seq, s.cur.off+1))
	if err := os.WriteFile(filepath.Join(dir, cursorName), torn, 0o640); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	// Everything still on disk comes again, the acked results of this
	// segment too (the collector drops them as duplicates).
	equalIDs(t, "after a cursor failing its check", drain(t, s, 10), idsOf(rs))
}
