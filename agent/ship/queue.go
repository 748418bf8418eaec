package ship

import (
	"log/slog"
	"sync"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// MemQueue is the in-memory Queue: bounded, dropping the oldest results
// past its cap. It is also the scheduler's sink (Publish).
type MemQueue struct {
	mu       sync.Mutex
	items    []*result.Result
	head     int64 // sequence number of items[0]
	peekHead int64 // head when Peek last ran
	max      int
	dropped  int64

	logger     *slog.Logger
	now        func() time.Time
	lastLog    time.Time
	unreported int64 // drops not logged yet
}

// NewMemQueue returns a queue holding at most max results.
func NewMemQueue(max int, logger *slog.Logger) *MemQueue {
	if logger == nil {
		logger = slog.Default()
	}
	return &MemQueue{max: max, logger: logger, now: time.Now}
}

// Publish appends results, dropping the oldest past the cap.
func (q *MemQueue) Publish(rs []*result.Result) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, rs...)
	if over := len(q.items) - q.max; over > 0 {
		q.remove(over)
		q.dropped += int64(over)
		q.unreported += int64(over)
		droppedFull.Add(over)
		q.logDrops()
	}
	queueLength.Set(float64(len(q.items)))
}

// logDrops says how many were dropped, at most once a minute. Callers hold mu.
func (q *MemQueue) logDrops() {
	now := q.now()
	if !q.lastLog.IsZero() && now.Sub(q.lastLog) < time.Minute {
		return
	}
	q.logger.Warn("ship queue full: dropped the oldest results (the collector is unreachable or slower than the checks)",
		"dropped", q.unreported, "dropped_total", q.dropped, "max_queue", q.max)
	q.lastLog, q.unreported = now, 0
}

// Peek returns up to n of the oldest results, leaving them queued.
func (q *MemQueue) Peek(n int) []*result.Result {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.peekHead = q.head
	n = min(n, len(q.items))
	return append([]*result.Result(nil), q.items[:n]...)
}

// Ack removes the first n results of the last Peek; those the cap already
// dropped meanwhile are not removed twice.
func (q *MemQueue) Ack(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if k := q.peekHead + int64(n) - q.head; k > 0 {
		q.remove(int(min(k, int64(len(q.items)))))
	}
	queueLength.Set(float64(len(q.items)))
}

// remove drops the n oldest. Callers hold mu.
func (q *MemQueue) remove(n int) {
	clear(q.items[:n]) // let the GC have them
	q.items = q.items[n:]
	q.head += int64(n)
	if len(q.items) == 0 {
		q.items = nil
	}
}

// Len returns how many results are queued.
func (q *MemQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Dropped returns how many results the cap dropped.
func (q *MemQueue) Dropped() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
