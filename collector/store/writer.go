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
	in    chan *writeReq
	done  chan struct{}
	spool *diskSpool // nil without SpoolDir
	stop  chan struct{}
	wg    sync.WaitGroup
}

type writeReq struct {
	rows []Row
	err  chan error // buffered, 1
}

// NewWriter starts a writer; Close stops it. It fails only when the spool
// directory cannot be used.
func NewWriter(conn driver.Conn, opt WriterOptions) (*Writer, error) {
	if opt.MaxRows <= 0 {
		opt.MaxRows = 10000
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = 250 * time.Millisecond
	}
	if opt.Queue <= 0 {
		opt.Queue = 1024
	}
	if opt.SpoolMaxBytes <= 0 {
		opt.SpoolMaxBytes = 1 << 30
	}
	if opt.DrainEvery <= 0 {
		opt.DrainEvery = 2 * time.Second
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	w := &Writer{conn: conn, opt: opt, in: make(chan *writeReq, opt.Queue), done: make(chan struct{}), stop: make(chan struct{})}
	if opt.SpoolDir != "" {
		sp, err := openDiskSpool(opt.SpoolDir, opt.SpoolMaxBytes)
		if err != nil {
			return nil, err
		}
		w.spool = sp
		w.wg.Add(1)
		go w.drainLoop()
	}
	go w.loop()
	return w, nil
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

// Close flushes what is pending and stops the writer. Spooled batches stay
// on disk for the next start.
func (w *Writer) Close() {
	close(w.in)
	<-w.done
	close(w.stop)
	w.wg.Wait()
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

// insert writes the requests' rows to ClickHouse or, failing that, to the
// spool; either way a nil error means the rows are durable.
func (w *Writer) insert(reqs []*writeReq, n int) error {
	rows := make([][]Row, len(reqs))
	for i, r := range reqs {
		rows[i] = r.rows
	}
	err := w.send(rows, n)
	if err == nil || w.spool == nil {
		return err
	}
	var all []Row
	for _, r := range rows {
		all = append(all, r...)
	}
	if serr := w.spool.put(all); serr != nil {
		w.opt.Logf("cannot spool %d results after a failed insert (%v): %v", n, err, serr)
		return serr
	}
	w.opt.Logf("ClickHouse insert failed (%v): spooled %d results to %s", err, n, w.opt.SpoolDir)
	return nil
}

func (w *Writer) send(rows [][]Row, n int) error {
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

func (w *Writer) appendAndSend(ctx context.Context, rows [][]Row) error {
	batch, err := w.conn.PrepareBatch(ctx, insertResults)
	if err != nil {
		return err
	}
	defer batch.Abort()
	vals := make([]any, len(resultColumns))
	for _, rs := range rows {
		for i := range rs {
			for j, c := range resultColumns {
				vals[j] = c.value(&rs[i])
			}
			if err := batch.Append(vals...); err != nil {
				return fmt.Errorf("result %s: %w", rs[i].ID, err)
			}
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
		if err := w.send([][]Row{rows}, len(rows)); err != nil {
			return // still away; try again next tick
		}
		w.spool.done(f, fi.Size())
		spoolDrained.Add(len(rows))
		w.opt.Logf("drained %d spooled results into ClickHouse", len(rows))
	}
}
