package store

import (
	"context"
	"errors"
	"fmt"
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
	Queue    int           // writes waiting (for the journal's fsync, or the insert without one) before ErrOverloaded (default 1024)

	// SpoolDir, when set, is the journal every write is fsynced to before
	// it is acknowledged; rows go on to ClickHouse in batches from memory,
	// or from the journal when ClickHouse is away. Without it a write is
	// acknowledged only once its batch is in ClickHouse, and a failed
	// insert fails its requests.
	SpoolDir      string
	SpoolMaxBytes int64         // default 1 GiB; past it writes fail with ErrSpoolFull
	DrainEvery    time.Duration // how often to retry ClickHouse after a failure (default 2s)
	MemBytes      int64         // journalled rows held in memory for inserting, counted in their journal lines' bytes (default 16 MiB); the rest is read back from the journal
	MaxWait       time.Duration // longest a write waits for the journal's fsync before ErrStalled (default 30s)
	Logf          func(format string, args ...any)
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.MaxRows <= 0 {
		o.MaxRows = 10000
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 250 * time.Millisecond
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	return o
}

// sink is how a writer makes rows durable: a journal with a SpoolDir, a
// batcher that waits for the insert without.
type sink[T any] interface {
	write(ctx context.Context, items []T) error
	close()
}

func newSink[T any](what string, opt WriterOptions, c codec[T], send func([]T) error) (sink[T], error) {
	opt = opt.withDefaults()
	if opt.SpoolDir == "" {
		return newBatcher(opt, send), nil
	}
	return openJournal(what, opt.SpoolDir, opt, c, send)
}

// Writer batches rows from many concurrent requests into few INSERTs. Write
// returns only once its rows are durable (see WriterOptions.SpoolDir), so a
// caller can acknowledge them.
type Writer struct {
	conn driver.Conn
	s    sink[Row]
}

// NewWriter starts a writer; Close stops it. It fails only when the spool
// directory cannot be used.
func NewWriter(conn driver.Conn, opt WriterOptions) (*Writer, error) {
	w := &Writer{conn: conn}
	s, err := newSink("results", opt, resultsCodec(), w.send)
	if err != nil {
		return nil, err
	}
	w.s = s
	return w, nil
}

// Write stores rows and returns once they are durable (nil); otherwise an
// error (ErrOverloaded, ErrSpoolFull, the disk's or the insert's) and
// nothing of the rows is acknowledged.
func (w *Writer) Write(ctx context.Context, rows []Row) error { return w.s.write(ctx, rows) }

// Close writes what is pending and stops the writer. What is not in
// ClickHouse yet stays in the spool for the next start.
func (w *Writer) Close() { w.s.close() }

var insertResults = insertInto("results", resultColumns, func(c column) string { return c.name })

func (w *Writer) send(rows []Row) error {
	n := len(rows)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := w.appendAndSend(ctx, rows)
	flushes.Inc()
	flushDuration.UpdateDuration(start)
	if err != nil {
		flushErrors.Inc()
		return fmt.Errorf("cannot store %d results: %w", n, err)
	}
	rowsWritten.Add(n)
	return nil
}

func (w *Writer) appendAndSend(ctx context.Context, rows []Row) error {
	batch, err := w.conn.PrepareBatch(ctx, insertResults)
	if err != nil {
		return err
	}
	defer batch.Abort()
	vals := make([]any, len(resultColumns))
	for i := range rows {
		for j, c := range resultColumns {
			vals[j] = c.value(&rows[i])
		}
		if err := batch.Append(vals...); err != nil {
			return fmt.Errorf("result %s: %w", rows[i].ID, err)
		}
	}
	return batch.Send()
}

// resultsCodec is a result's journal line: the Row as JSON; a row read back
// that may be stored already is marked Replay (see codec.replay).
func resultsCodec() codec[Row] {
	c := jsonCodec[Row]()
	c.replay = func(r *Row) { r.Replay = true }
	return c
}
