package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
)

var (
	heartbeatsWritten = metrics.NewCounter("meridian_store_heartbeats_written_total")
	heartbeatsDropped = metrics.NewCounter("meridian_store_heartbeats_dropped_total")
)

// Heartbeat is what an agent says about itself (POST /v1/agent/heartbeat).
// TS is when the collector received it.
type Heartbeat struct {
	Agent         string
	TS            time.Time
	Version       string
	UptimeS       uint64
	SpoolResults  uint64
	SpoolBytes    uint64
	LastError     string
	ConfigVersion uint64
	Checks        uint32
}

var heartbeatColumns = []string{"agent", "ts", "version", "uptime_s", "spool_results", "spool_bytes", "last_error", "config_version", "checks"}

// HeartbeatWriter batches heartbeats into one INSERT per interval: a fleet
// of hundreds of agents beating every 30s would otherwise make a part per
// heartbeat. Heartbeats are advisory, so Add never waits for ClickHouse;
// what cannot be written is counted, logged and dropped.
type HeartbeatWriter struct {
	conn  driver.Conn
	every time.Duration
	max   int
	logf  func(format string, args ...any)

	mu      sync.Mutex
	pending []Heartbeat
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// NewHeartbeatWriter starts a writer flushing every interval (default 1s);
// Close flushes and stops it. logf may be nil.
func NewHeartbeatWriter(conn driver.Conn, every time.Duration, logf func(format string, args ...any)) *HeartbeatWriter {
	if every <= 0 {
		every = time.Second
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	w := &HeartbeatWriter{conn: conn, every: every, max: 100000, logf: logf, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// Add queues hb for the next flush; false when it was dropped (the queue
// is full because ClickHouse is away, or the writer is closed).
func (w *HeartbeatWriter) Add(hb Heartbeat) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.pending) >= w.max {
		heartbeatsDropped.Inc()
		return false
	}
	w.pending = append(w.pending, hb)
	return true
}

// Close writes what is pending and stops the writer.
func (w *HeartbeatWriter) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
}

func (w *HeartbeatWriter) loop() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.flush()
		case <-w.stop:
			w.flush()
			return
		}
	}
}

func (w *HeartbeatWriter) flush() {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WriteHeartbeats(ctx, w.conn, batch); err != nil {
		w.mu.Lock()
		if room := w.max - len(w.pending); room > 0 { // keep them for the next flush
			keep := batch[max(0, len(batch)-room):]
			heartbeatsDropped.Add(len(batch) - len(keep))
			w.pending = append(keep, w.pending...)
		} else {
			heartbeatsDropped.Add(len(batch))
		}
		w.mu.Unlock()
		w.logf("cannot store %d agent heartbeats (will retry): %v", len(batch), err)
		return
	}
	heartbeatsWritten.Add(len(batch))
}

// WriteHeartbeats inserts hbs in one batch.
func WriteHeartbeats(ctx context.Context, conn driver.Conn, hbs []Heartbeat) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO agent_heartbeats ("+strings.Join(heartbeatColumns, ", ")+")")
	if err != nil {
		return err
	}
	defer batch.Abort()
	for _, h := range hbs {
		if err := batch.Append(h.Agent, h.TS, h.Version, h.UptimeS, h.SpoolResults, h.SpoolBytes, h.LastError, h.ConfigVersion, h.Checks); err != nil {
			return fmt.Errorf("heartbeat of %s: %w", h.Agent, err)
		}
	}
	return batch.Send()
}

// LatestHeartbeats returns each agent's newest heartbeat of the last 30 days.
func LatestHeartbeats(ctx context.Context, conn driver.Conn) (map[string]Heartbeat, error) {
	rows, err := conn.Query(ctx, `SELECT agent, max(ts), argMax(version, ts), argMax(uptime_s, ts),
		argMax(spool_results, ts), argMax(spool_bytes, ts), argMax(last_error, ts),
		argMax(config_version, ts), argMax(checks, ts)
		FROM agent_heartbeats WHERE ts >= now() - 30 * 86400 GROUP BY agent`)
	if err != nil {
		return nil, fmt.Errorf("cannot read agent heartbeats: %w", err)
	}
	defer rows.Close()
	out := map[string]Heartbeat{}
	for rows.Next() {
		var h Heartbeat
		if err := rows.Scan(&h.Agent, &h.TS, &h.Version, &h.UptimeS, &h.SpoolResults, &h.SpoolBytes,
			&h.LastError, &h.ConfigVersion, &h.Checks); err != nil {
			return nil, fmt.Errorf("cannot read agent heartbeat: %w", err)
		}
		out[h.Agent] = h
	}
	return out, rows.Err()
}
