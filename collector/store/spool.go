package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// ErrSpoolFull means ClickHouse is away and the disk spool is at its cap;
// callers answer 503 with Retry-After so senders keep their data.
var ErrSpoolFull = errors.New("ClickHouse is unavailable and the collector's spool is full")

// durable writes batches to ClickHouse with send or, when that fails, to an
// fsynced disk spool (one file per batch) that a background loop drains with
// send once ClickHouse takes inserts again. Either way a nil error means the
// batch is durable, so it may be acknowledged. Without a spool directory a
// failed send is simply an error.
type durable[T any] struct {
	what  string // "results", "beacons": for logs and metrics
	send  func([]T) error
	spool *diskSpool[T] // nil without a directory
	logf  func(format string, args ...any)
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newDurable[T any](what, dir string, opt WriterOptions, send func([]T) error) (*durable[T], error) {
	d := &durable[T]{what: what, send: send, logf: opt.Logf, stop: make(chan struct{})}
	if d.logf == nil {
		d.logf = func(string, ...any) {}
	}
	if dir == "" {
		return d, nil
	}
	maxBytes, every := opt.SpoolMaxBytes, opt.DrainEvery
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	sp, err := openDiskSpool[T](dir, maxBytes, what)
	if err != nil {
		return nil, err
	}
	d.spool = sp
	d.wg.Add(1)
	go d.drainLoop(every)
	return d, nil
}

func (d *durable[T]) write(items []T) error {
	err := d.send(items)
	if err == nil || d.spool == nil {
		return err
	}
	if serr := d.spool.put(items); serr != nil {
		d.logf("cannot spool %d %s after a failed insert (%v): %v", len(items), d.what, err, serr)
		return serr
	}
	metrics.GetOrCreateCounter(`meridian_store_spooled_total{what="` + d.what + `"}`).Add(len(items))
	d.logf("ClickHouse insert failed (%v): spooled %d %s to %s", err, len(items), d.what, d.spool.dir)
	return nil
}

// close stops draining; spooled batches stay on disk for the next start.
func (d *durable[T]) close() {
	close(d.stop)
	d.wg.Wait()
}

func (d *durable[T]) drainLoop(every time.Duration) {
	defer d.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			if !d.spool.empty() {
				d.drain()
			}
		}
	}
}

// drain moves spooled batches into ClickHouse, oldest first, stopping at the
// first failure until the next tick.
func (d *durable[T]) drain() {
	files, err := d.spool.files()
	if err != nil {
		d.logf("%v", err)
		return
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		items, err := readSpooled[T](f)
		if err != nil {
			d.logf("%v: moved aside as %s.bad", err, f)
			os.Rename(f, f+".bad")
			d.spool.done(f, fi.Size())
			continue
		}
		if err := d.send(items); err != nil {
			return // still away; try again next tick
		}
		d.spool.done(f, fi.Size())
		metrics.GetOrCreateCounter(`meridian_store_spool_drained_total{what="` + d.what + `"}`).Add(len(items))
		d.logf("drained %d spooled %s into ClickHouse", len(items), d.what)
	}
}

// diskSpool keeps batches that could not be written to ClickHouse, one
// fsynced file of JSON lines per batch.
type diskSpool[T any] struct {
	dir      string
	maxBytes int64

	mu    sync.Mutex
	seq   uint64
	bytes int64
}

func openDiskSpool[T any](dir string, maxBytes int64, what string) (*diskSpool[T], error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create spool directory %q: %w", dir, err)
	}
	s := &diskSpool[T]{dir: dir, maxBytes: maxBytes}
	files, err := s.files()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		s.bytes += fi.Size()
		var n uint64
		fmt.Sscanf(filepath.Base(f), "batch-%020d.ndjson", &n)
		s.seq = max(s.seq, n)
	}
	metrics.GetOrCreateGauge(`meridian_store_spool_bytes{what="`+what+`"}`, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.bytes)
	})
	return s, nil
}

// files lists the spooled batches, oldest first. Temporary files from a
// crash mid-write are removed: their batch was never acknowledged.
func (s *diskSpool[T]) files() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read spool directory %q: %w", s.dir, err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			os.Remove(filepath.Join(s.dir, name))
		case strings.HasPrefix(name, "batch-") && strings.HasSuffix(name, ".ndjson"):
			out = append(out, filepath.Join(s.dir, name))
		}
	}
	sort.Strings(out)
	return out, nil
}

// put writes items durably (write, fsync, rename, fsync the directory).
func (s *diskSpool[T]) put(items []T) error {
	var buf []byte
	for i := range items {
		line, err := json.Marshal(&items[i])
		if err != nil {
			return fmt.Errorf("cannot encode a row for the spool: %w", err)
		}
		buf = append(append(buf, line...), '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+int64(len(buf)) > s.maxBytes {
		return ErrSpoolFull
	}
	s.seq++
	name := filepath.Join(s.dir, fmt.Sprintf("batch-%020d.ndjson", s.seq))
	if err := writeFileSync(name, buf); err != nil {
		return fmt.Errorf("cannot spool %d rows: %w", len(items), err)
	}
	s.bytes += int64(len(buf))
	return nil
}

func writeFileSync(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readSpooled returns the rows of one spooled batch.
func readSpooled[T any](name string) ([]T, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var items []T
	for sc.Scan() {
		var item T
		if err := json.Unmarshal(sc.Bytes(), &item); err != nil {
			return nil, fmt.Errorf("spooled batch %s is damaged: %w", filepath.Base(name), err)
		}
		items = append(items, item)
	}
	return items, sc.Err()
}

// done removes a batch once it is in ClickHouse.
func (s *diskSpool[T]) done(name string, size int64) {
	if err := os.Remove(name); err == nil {
		s.mu.Lock()
		s.bytes -= size
		s.mu.Unlock()
	}
}

func (s *diskSpool[T]) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes == 0
}
