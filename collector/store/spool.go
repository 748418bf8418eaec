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

var (
	spoolBatches = metrics.NewCounter("meridian_store_spooled_batches_total")
	spoolRows    = metrics.NewCounter("meridian_store_spooled_rows_total")
	spoolDrained = metrics.NewCounter("meridian_store_spool_drained_rows_total")
)

// diskSpool keeps batches that could not be written to ClickHouse, one
// fsynced file per batch, until they can be. A batch is acknowledged to its
// sender once its file is durable.
type diskSpool struct {
	dir      string
	maxBytes int64

	mu    sync.Mutex
	seq   uint64
	bytes int64
}

// spooledRow is a Row on disk: the result's own JSON plus what the
// collector added to it.
type spooledRow struct {
	Row        json.RawMessage `json:"result"`
	Region     string          `json:"region"`
	ReceivedAt int64           `json:"received_at_unix"`
}

func openDiskSpool(dir string, maxBytes int64) (*diskSpool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create spool directory %q: %w", dir, err)
	}
	s := &diskSpool{dir: dir, maxBytes: maxBytes}
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
	spoolGauge(s)
	return s, nil
}

func spoolGauge(s *diskSpool) {
	metrics.GetOrCreateGauge("meridian_store_spool_bytes", func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.bytes)
	})
}

// files lists the spooled batches, oldest first. Temporary files from a
// crash mid-write are removed: their batch was never acknowledged.
func (s *diskSpool) files() ([]string, error) {
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

// put writes rows durably (write, fsync, rename, fsync the directory).
func (s *diskSpool) put(rows []Row) error {
	var buf []byte
	for i := range rows {
		res, err := json.Marshal(&rows[i].Result)
		if err != nil {
			return fmt.Errorf("cannot encode result %s for the spool: %w", rows[i].ID, err)
		}
		line, _ := json.Marshal(spooledRow{Row: res, Region: rows[i].Region, ReceivedAt: rows[i].ReceivedAt.UnixNano()})
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
		return fmt.Errorf("cannot spool %d results: %w", len(rows), err)
	}
	s.bytes += int64(len(buf))
	spoolBatches.Inc()
	spoolRows.Add(len(rows))
	return nil
}

func writeFileSync(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
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

// read returns the rows of one spooled batch.
func readSpooled(name string) ([]Row, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var rows []Row
	for sc.Scan() {
		var sr spooledRow
		if err := json.Unmarshal(sc.Bytes(), &sr); err != nil {
			return nil, fmt.Errorf("spooled batch %s is damaged: %w", filepath.Base(name), err)
		}
		var r Row
		if err := json.Unmarshal(sr.Row, &r.Result); err != nil {
			return nil, fmt.Errorf("spooled batch %s is damaged: %w", filepath.Base(name), err)
		}
		r.Region, r.ReceivedAt = sr.Region, unixNano(sr.ReceivedAt)
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// done removes a batch once it is in ClickHouse.
func (s *diskSpool) done(name string, size int64) {
	if err := os.Remove(name); err == nil {
		s.mu.Lock()
		s.bytes -= size
		s.mu.Unlock()
	}
}

func (s *diskSpool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes == 0
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns) }
