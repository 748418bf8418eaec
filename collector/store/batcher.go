package store

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed means the writer was closed: the collector is stopping.
var ErrClosed = errors.New("store writer is closed")

// gate lets writers send on a queue while it may be closed under them (a
// request outliving the server's shutdown timeout): after closing, sends
// fail with ErrClosed instead of panicking.
type gate struct {
	mu     sync.RWMutex
	closed bool
}

// trySend queues v, or fails at once: ErrOverloaded when the queue is full.
func trySend[T any](g *gate, ch chan T, v T) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return ErrClosed
	}
	select {
	case ch <- v:
		return nil
	default:
		return ErrOverloaded
	}
}

func closeQueue[T any](g *gate, ch chan T) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		close(ch)
	}
}

// batcher gathers items from concurrent callers and hands them to flush in
// batches, by size or age; every caller learns its batch's outcome. Every
// table's writer batches through one.
type batcher[T any] struct {
	opt   WriterOptions
	in    chan *batchReq[T]
	gate  gate
	done  chan struct{}
	flush func([]T) error
}

type batchReq[T any] struct {
	items []T
	err   chan error // buffered, 1
}

// newBatcher takes opt with defaults applied.
func newBatcher[T any](opt WriterOptions, flush func([]T) error) *batcher[T] {
	b := &batcher[T]{opt: opt, in: make(chan *batchReq[T], opt.Queue), done: make(chan struct{}), flush: flush}
	go b.loop()
	return b
}

func (b *batcher[T]) write(ctx context.Context, items []T) error {
	if len(items) == 0 {
		return nil
	}
	req := &batchReq[T]{items: items, err: make(chan error, 1)}
	if err := trySend(&b.gate, b.in, req); err != nil {
		return err
	}
	select {
	case err := <-req.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher[T]) close() {
	closeQueue(&b.gate, b.in)
	<-b.done
}

func (b *batcher[T]) loop() {
	defer close(b.done)
	var (
		pending []*batchReq[T]
		items   []T
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	flush := func() {
		if len(pending) > 0 {
			b.answer(pending, b.flush(items))
		}
		pending, items = pending[:0], nil
		timer.Stop()
	}
	for {
		select {
		case req, ok := <-b.in:
			if !ok {
				flush()
				return
			}
			if len(pending) == 0 {
				timer.Reset(b.opt.MaxDelay)
			}
			pending = append(pending, req)
			items = append(items, req.items...)
			if len(items) >= b.opt.MaxRows {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// answer tells every request of a batch its outcome. When ClickHouse
// refused the batch for its data, each request is inserted on its own:
// only the requests holding a refused row fail (with the server's error,
// so their senders keep them), the others' rows are stored. Without a
// journal there is nowhere to dead-letter a row, and a sender's request
// is the unit it retries.
func (b *batcher[T]) answer(pending []*batchReq[T], err error) {
	if err == nil || len(pending) == 1 || !refusesData(err) {
		for _, r := range pending {
			r.err <- err
		}
		return
	}
	for _, r := range pending {
		r.err <- b.flush(r.items)
	}
}
