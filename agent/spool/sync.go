package spool

import (
	"fmt"
	"time"
)

// Group commit: Append only writes, and one fsync, SyncDelay after the first
// write it covers (or sooner, when Next or a new segment needs it), makes
// the writes in between durable. An agent appends each check's result on
// its own, a few times a second: an fsync apiece was most of the CPU the
// spool cost. A crash of the agent alone loses nothing either way (the
// kernel has the writes); only a power cut can take what waits.

// syncSoon records that s.w has writes to fsync and arms the delayed fsync.
// Callers hold mu.
func (s *Spool) syncSoon() {
	if s.opts.SyncDelay < 0 {
		return // write fsynced it already
	}
	s.dirty = true
	if s.timerSet {
		return
	}
	s.timerSet = true
	if s.syncTimer == nil {
		s.syncTimer = time.AfterFunc(s.opts.SyncDelay, s.timedSync)
		return
	}
	s.syncTimer.Reset(s.opts.SyncDelay)
}

// timedSync is the delayed fsync.
func (s *Spool) timedSync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timerSet = false
	if s.closed {
		return
	}
	if err := s.syncNow(); err != nil {
		s.opts.Logf("spool: %v (its results stay queued and are shipped; a power cut before then may take them)", err)
	}
}

// syncNow fsyncs the writes not yet durable, if any. After a failed fsync
// the file's state is unknown, so the next Append starts a new segment; the
// results already written stay queued (shipping them is their best chance).
// Callers hold mu.
func (s *Spool) syncNow() error {
	if !s.dirty || s.w == nil {
		return nil
	}
	s.dirty = false
	s.syncs++
	if err := s.w.Sync(); err != nil {
		s.roll = true
		return fmt.Errorf("cannot fsync spool segment %s: %w", s.w.Name(), err)
	}
	return nil
}

// stopSyncTimer disarms the delayed fsync once nothing waits for it.
// Callers hold mu.
func (s *Spool) stopSyncTimer() {
	if s.timerSet && !s.dirty && s.syncTimer.Stop() {
		s.timerSet = false
	}
}
