package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/agent/config"
	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/agent/sched"
)

// Paths on the collector.
const (
	configPath    = "/v1/agent/config"
	heartbeatPath = "/v1/agent/heartbeat"
)

// Defaults.
const (
	defaultConfigPoll     = 30 * time.Second
	defaultHeartbeatEvery = 30 * time.Second
	remoteTimeout         = 10 * time.Second
	maxRemoteConfigBytes  = 4 << 20
)

var processStart = time.Now()

// remote pulls the agent's remote checks from the collector and reports the
// agent's state to it.
//
// The remote document (GET /v1/agent/config) is YAML with one key, checks:,
// whose list has the schema of the file's checks (config.ParseChecks). Its
// checks run alongside the file's: the file's always stay, a new document
// replaces the previous remote set, and a remote check named like a file
// check is refused (logged). A document that does not validate is logged
// and the checks running go on unchanged. 404 means no remote config: the
// remote checks, if any, are dropped.
type remote struct {
	url, token  string
	client      *http.Client
	logger      *slog.Logger
	sc          *sched.Scheduler
	local       []probe.Check
	fileVersion uint32
	spool       func() (results, bytes int64)
	lastError   *lastError

	mu       sync.Mutex
	etag     string // of the last document seen, applied or not
	doc      []byte // the document applied; nil when none
	version  uint32 // config_version: the file's, mixed with the remote document's
	lastFail string // the last poll failure logged, so an outage logs once
	hbFail   string
}

func newRemote(cfg *config.Config, sc *sched.Scheduler, spool func() (int64, int64), lastErr *lastError, logger *slog.Logger) *remote {
	return &remote{
		url: strings.TrimRight(cfg.Collector, "/"), token: cfg.Token,
		client: &http.Client{Timeout: remoteTimeout}, logger: logger, sc: sc,
		local: cfg.Checks, fileVersion: cfg.Version, version: cfg.Version,
		spool: spool, lastError: lastErr,
	}
}

// Version is the config version: the file's alone, or mixed with the
// remote document's when one is applied.
func (r *remote) Version() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// run polls the config every poll (none when 0) and sends a heartbeat now
// and every heartbeat, until ctx is done.
func (r *remote) run(ctx context.Context, poll, heartbeat time.Duration) {
	var wg sync.WaitGroup
	if poll > 0 {
		wg.Go(func() { every(ctx, poll, func() { r.poll(ctx) }) })
	}
	if heartbeat > 0 {
		wg.Go(func() { every(ctx, heartbeat, func() { r.heartbeat(ctx) }) })
	}
	wg.Wait()
}

// every calls f now and then every d until ctx is done.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll asks the collector for the remote checks and applies a change.
func (r *remote) poll(ctx context.Context) {
	if err := r.pollOnce(ctx); err != nil && ctx.Err() == nil {
		r.mu.Lock()
		repeat := err.Error() == r.lastFail
		r.lastFail = err.Error()
		r.mu.Unlock()
		if !repeat {
			r.logger.Warn("cannot poll the remote config; keeping the checks running", "err", err)
		}
		return
	}
	r.mu.Lock()
	r.lastFail = ""
	r.mu.Unlock()
}

func (r *remote) pollOnce(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", r.url+configPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	r.mu.Lock()
	if r.etag != "" {
		req.Header.Set("If-None-Match", r.etag)
	}
	r.mu.Unlock()
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteConfigBytes+1))
	if err != nil {
		return fmt.Errorf("cannot read the remote config: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if len(body) > maxRemoteConfigBytes {
			return fmt.Errorf("remote config is over %d bytes", maxRemoteConfigBytes)
		}
		r.apply(body, resp.Header.Get("ETag"))
		return nil
	case http.StatusNotModified:
		return nil
	case http.StatusNotFound:
		r.apply(nil, "")
		return nil
	case http.StatusUnauthorized:
		return fmt.Errorf("collector refused the token (401): check MERIDIAN_TOKEN against `meridian agents add`")
	}
	return fmt.Errorf("collector answered %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
}

// apply runs doc's checks with the file's; nil doc means no remote checks.
func (r *remote) apply(doc []byte, etag string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if doc == nil && r.doc == nil {
		r.etag = ""
		return
	}
	if doc != nil && bytes.Equal(doc, r.doc) {
		r.etag = etag
		return
	}
	var remote []probe.Check
	if doc != nil {
		checks, err := config.ParseChecks("remote config", doc)
		r.etag = etag // a bad document is logged once, not on every poll
		if err != nil {
			r.logger.Error("refusing the remote config; the checks running go on unchanged (fix it with `meridian agents config set`)",
				"err", err)
			return
		}
		local := make(map[string]bool, len(r.local))
		for _, c := range r.local {
			local[c.Name] = true
		}
		for _, c := range checks {
			if local[c.Name] {
				r.logger.Error("refusing a remote check named like a check in the config file; the file's check runs",
					"check", c.Name)
				continue
			}
			remote = append(remote, c)
		}
	} else {
		r.etag = ""
	}
	all := append(append([]probe.Check(nil), r.local...), remote...)
	r.sc.Update(all)
	r.doc = doc
	r.version = mixVersion(r.fileVersion, doc)
	setConfigGauges(r.version, len(all))
	if doc == nil {
		r.logger.Info("remote config removed; running the file's checks only", "checks", len(all), "config_version", r.version)
	} else {
		r.logger.Info("applied the remote config", "remote_checks", len(remote), "checks", len(all), "config_version", r.version)
	}
}

// mixVersion is the file's version alone, or a hash of it and doc.
func mixVersion(file uint32, doc []byte) uint32 {
	if doc == nil {
		return file
	}
	h := fnv.New32a()
	binary.Write(h, binary.BigEndian, file)
	h.Write(doc)
	return h.Sum32()
}

func setConfigGauges(version uint32, checks int) {
	metrics.GetOrCreateGauge("meridian_agent_config_version", nil).Set(float64(version))
	metrics.GetOrCreateGauge("meridian_agent_config_checks", nil).Set(float64(checks))
}

// Heartbeat is what the agent POSTs to /v1/agent/heartbeat.
type Heartbeat struct {
	Version       string `json:"version"`
	UptimeS       uint64 `json:"uptime_s"`
	SpoolResults  uint64 `json:"spool_results"`
	SpoolBytes    uint64 `json:"spool_bytes"`
	LastError     string `json:"last_error"`
	ConfigVersion uint64 `json:"config_version"`
	Checks        uint32 `json:"checks"`
}

func (r *remote) heartbeat(ctx context.Context) {
	n, b := r.spool()
	hb := Heartbeat{
		Version: version, UptimeS: uint64(time.Since(processStart).Seconds()),
		SpoolResults: uint64(max(n, 0)), SpoolBytes: uint64(max(b, 0)),
		LastError: r.lastError.get(), ConfigVersion: uint64(r.Version()), Checks: uint32(len(r.sc.Checks())),
	}
	err := r.postHeartbeat(ctx, hb)
	if ctx.Err() != nil {
		return
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	r.mu.Lock()
	repeat := msg == r.hbFail
	r.hbFail = msg
	r.mu.Unlock()
	if err != nil && !repeat {
		// Info, not Warn: shipping failures already say the collector is
		// away, and this must not become the last_error it reports.
		r.logger.Info("cannot send a heartbeat; will retry", "err", err)
	}
}

func (r *remote) postHeartbeat(ctx context.Context, hb Heartbeat) error {
	body, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", r.url+heartbeatPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// lastError keeps the newest warning or error the agent logged, for the
// heartbeat.
type lastError struct{ v atomic.Pointer[string] }

func (l *lastError) get() string {
	if p := l.v.Load(); p != nil {
		return *p
	}
	return ""
}

// captureErrors returns a logger that also records its newest record at
// Warn or above in last.
func captureErrors(logger *slog.Logger, last *lastError) *slog.Logger {
	return slog.New(&errCapture{Handler: logger.Handler(), last: last})
}

type errCapture struct {
	slog.Handler
	last *lastError
}

func (h *errCapture) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(rec.Time.UTC().Format(time.RFC3339))
		b.WriteString(" ")
		b.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		s := b.String()
		h.last.v.Store(&s)
	}
	return h.Handler.Handle(ctx, rec)
}

func (h *errCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &errCapture{Handler: h.Handler.WithAttrs(as), last: h.last}
}

func (h *errCapture) WithGroup(name string) slog.Handler {
	return &errCapture{Handler: h.Handler.WithGroup(name), last: h.last}
}
