package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
)

var (
	rowsWritten   = metrics.NewCounter("meridian_store_rows_written_total")
	flushes       = metrics.NewCounter("meridian_store_flushes_total")
	flushErrors   = metrics.NewCounter("meridian_store_flush_errors_total")
	flushDuration = metrics.NewHistogram("meridian_store_flush_duration_seconds")
)

// ErrOverloaded means the writer's queue is full; callers answer 503.
var ErrOverloaded = errors.New("store writer is overloaded")

// WriterOptions tune batching. Zero values take the defaults.
type WriterOptions struct {
	MaxRows  int           // flush when this many rows are pending (default 10000)
	MaxDelay time.Duration // flush this long after the first pending row (default 250ms)
	Queue    int           // requests waiting for a flush before ErrOverloaded (default 1024)
}

// Writer batches rows from many concurrent requests into few INSERTs. Write
// returns only once its rows are in ClickHouse, so a caller can acknowledge
// a batch knowing it is durable.
type Writer struct {
	conn driver.Conn
	opt  WriterOptions
	in   chan *writeReq
	done chan struct{}
}

type writeReq struct {
	rows []Row
	err  chan error // buffered, 1
}

// NewWriter starts a writer; Close stops it.
func NewWriter(conn driver.Conn, opt WriterOptions) *Writer {
	if opt.MaxRows <= 0 {
		opt.MaxRows = 10000
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = 250 * time.Millisecond
	}
	if opt.Queue <= 0 {
		opt.Queue = 1024
	}
	w := &Writer{conn: conn, opt: opt, in: make(chan *writeReq, opt.Queue), done: make(chan struct{})}
	go w.loop()
	return w
}

// Write stores rows and returns once they are in ClickHouse (nil) or could
// not be stored (an error; nothing of a failed flush is acknowledged).
func (w *Writer) Write(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	req := &writeReq{rows: rows, err: make(chan error, 1)}
	select {
	case w.in <- req:
	default:
		return ErrOverloaded
	}
	select {
	case err := <-req.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes what is pending and stops the writer.
func (w *Writer) Close() {
	close(w.in)
	<-w.done
}

func (w *Writer) loop() {
	defer close(w.done)
	var (
		pending []*writeReq
		n       int
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	flush := func() {
		if len(pending) > 0 {
			err := w.insert(pending, n)
			for _, r := range pending {
				r.err <- err
			}
		}
		pending, n = pending[:0], 0
		timer.Stop()
	}
	for {
		select {
		case req, ok := <-w.in:
			if !ok {
				flush()
				return
			}
			if len(pending) == 0 {
				timer.Reset(w.opt.MaxDelay)
			}
			pending = append(pending, req)
			n += len(req.rows)
			if n >= w.opt.MaxRows {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

var insertResults = func() string {
	names := make([]string, len(resultColumns))
	for i, c := range resultColumns {
		names[i] = c.name
	}
	return "INSERT INTO results (" + strings.Join(names, ", ") + ")"
}()

func (w *Writer) insert(reqs []*writeReq, n int) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := w.send(ctx, reqs)
	flushes.Inc()
	flushDuration.UpdateDuration(start)
	if err != nil {
		flushErrors.Inc()
		return fmt.Errorf("cannot store %d results: %w", n, err)
	}
	rowsWritten.Add(n)
	return nil
}

func (w *Writer) send(ctx context.Context, reqs []*writeReq) error {
	batch, err := w.conn.PrepareBatch(ctx, insertResults)
	if err != nil {
		return err
	}
	defer batch.Abort()
	vals := make([]any, len(resultColumns))
	for _, req := range reqs {
		for i := range req.rows {
			for j, c := range resultColumns {
				vals[j] = c.value(&req.rows[i])
			}
			if err := batch.Append(vals...); err != nil {
				return fmt.Errorf("result %s: %w", req.rows[i].ID, err)
			}
		}
	}
	return batch.Send()
}
