package spool

import (
	"errors"
	"sync"

	"github.com/meridian-net/meridian/internal/result"
)

// Queue adapts a Spool to the agent's two ends of it: the scheduler's sink
// (agent/sched.Sink: Publish appends durably) and the shipper's queue
// (agent/ship.Queue: Peek(n) reads without removing, Ack(n) durably removes
// the first n of the last Peek). Errors cannot be returned there, so they
// are logged: a failed Peek ships nothing this round, a failed Ack means
// those results are sent again (same ids, the collector drops the
// duplicates), a failed Publish drops the results and counts them.
type Queue struct {
	s *Spool

	mu   sync.Mutex
	last Batch
}

// Queue returns the shipper's view of s.
func (s *Spool) Queue() *Queue { return &Queue{s: s} }

// Publish appends rs (fsynced within SyncDelay, and before Next hands them
// out; a crash of the agent alone never loses them). A failed append is
// retried once (Append starts a fresh segment after a write error); if that
// fails too, rs are dropped, counted in meridian_agent_spool_dropped_total
// and logged: the scheduler cannot wait for a full or broken disk.
func (q *Queue) Publish(rs []*result.Result) {
	err := q.s.Append(rs)
	if err != nil && !errors.Is(err, ErrClosed) {
		err = q.s.Append(rs)
	}
	if err != nil {
		droppedTotal.Add(len(rs))
		q.s.mu.Lock()
		q.s.dropped += uint64(len(rs))
		q.s.mu.Unlock()
		q.s.opts.Logf("spool: dropped %d results that cannot be spooled: %v", len(rs), err)
	}
}

// Peek returns up to n of the oldest unacked results.
func (q *Queue) Peek(n int) []*result.Result {
	b, err := q.s.Next(n)
	if err != nil {
		q.s.opts.Logf("spool: cannot read results to ship: %v", err)
		b = Batch{}
	}
	q.mu.Lock()
	q.last = b
	q.mu.Unlock()
	return b.Results()
}

// Ack removes the first n results of the last Peek.
func (q *Queue) Ack(n int) {
	q.mu.Lock()
	b := q.last.Head(n)
	q.mu.Unlock()
	if err := q.s.Ack(b); err != nil {
		q.s.opts.Logf("spool: %v; these results will be sent again", err)
	}
}

// Len returns the number of results not yet acked.
func (q *Queue) Len() int { return q.s.Len() }
