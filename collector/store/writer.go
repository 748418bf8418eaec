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
	Queue    int           // requests waiting for a flush before ErrOverloaded (default 1024)

	// SpoolDir, when set, is where batches go (fsynced) when ClickHouse
	// cannot take them; they are acknowledged and drained later. Without
	// it a failed flush fails its requests.
	SpoolDir      string
	SpoolMaxBytes int64         // default 1 GiB; past it writes fail with ErrSpoolFull
	DrainEvery    time.Duration // how often to retry spooled batches (default 2s)
	Logf          func(format string, args ...any)
}

// Writer batches rows from many concurrent requests into few INSERTs. Write
// returns only once its rows are in ClickHouse, so a caller can acknowledge
// a batch knowing it is durable.
type Writer struct {
	conn driver.Conn
	b    *batcher[Row]
	d    *durable[Row]
}

// NewWriter starts a writer; Close stops it. It fails only when the spool
// directory cannot be used.
func NewWriter(conn driver.Conn, opt WriterOptions) (*Writer, error) {
	w := &Writer{conn: conn}
	d, err := newDurable("results", opt.SpoolDir, opt, w.send)
	if err != nil {
		return nil, err
	}
	w.d = d
	w.b = newBatcher(opt, d.write)
	return w, nil
}

// Write stores rows and returns once they are durable: in ClickHouse or,
// while it is away, in the spool (nil); otherwise an error and nothing of
// the rows is acknowledged.
func (w *Writer) Write(ctx context.Context, rows []Row) error { return w.b.write(ctx, rows) }

// Close flushes what is pending and stops the writer. Spooled batches stay
// on disk for the next start.
func (w *Writer) Close() {
	w.b.close()
	w.d.close()
}

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
