package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
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
	conn  driver.Conn
	opt   WriterOptions
	b     *batcher[Row]
	spool *diskSpool // nil without SpoolDir
	stop  chan struct{}
	wg    sync.WaitGroup
}

// NewWriter starts a writer; Close stops it. It fails only when the spool
// directory cannot be used.
func NewWriter(conn driver.Conn, opt WriterOptions) (*Writer, error) {
	if opt.SpoolMaxBytes <= 0 {
		opt.SpoolMaxBytes = 1 << 30
	}
	if opt.DrainEvery <= 0 {
		opt.DrainEvery = 2 * time.Second
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	w := &Writer{conn: conn, opt: opt, stop: make(chan struct{})}
	if opt.SpoolDir != "" {
		sp, err := openDiskSpool(opt.SpoolDir, opt.SpoolMaxBytes)
		if err != nil {
			return nil, err
		}
		w.spool = sp
		w.wg.Add(1)
		go w.drainLoop()
	}
	w.b = newBatcher(opt, w.insert)
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
	close(w.stop)
	w.wg.Wait()
}

var insertResults = func() string {
	names := make([]string, len(resultColumns))
	for i, c := range resultColumns {
		names[i] = c.name
	}
	return "INSERT INTO results (" + strings.Join(names, ", ") + ")"
}()

// insert writes the requests' rows to ClickHouse or, failing that, to the
// spool; either way a nil error means the rows are durable.
func (w *Writer) insert(rows []Row) error {
	n := len(rows)
	err := w.send(rows)
	if err == nil || w.spool == nil {
		return err
	}
	if serr := w.spool.put(rows); serr != nil {
		w.opt.Logf("cannot spool %d results after a failed insert (%v): %v", n, err, serr)
		return serr
	}
	w.opt.Logf("ClickHouse insert failed (%v): spooled %d results to %s", err, n, w.opt.SpoolDir)
	return nil
}

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

// drainLoop moves spooled batches into ClickHouse, oldest first, stopping
// at the first failure until the next tick.
func (w *Writer) drainLoop() {
	defer w.wg.Done()
	t := time.NewTicker(w.opt.DrainEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			if !w.spool.empty() {
				w.drain()
			}
		}
	}
}

func (w *Writer) drain() {
	files, err := w.spool.files()
	if err != nil {
		w.opt.Logf("%v", err)
		return
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		rows, err := readSpooled(f)
		if err != nil {
			w.opt.Logf("%v: moved aside as %s.bad", err, f)
			os.Rename(f, f+".bad")
			w.spool.done(f, fi.Size())
			continue
		}
		if err := w.send(rows); err != nil {
			return // still away; try again next tick
		}
		w.spool.done(f, fi.Size())
		spoolDrained.Add(len(rows))
		w.opt.Logf("drained %d spooled results into ClickHouse", len(rows))
	}
}
