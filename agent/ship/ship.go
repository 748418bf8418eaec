// Package ship owns getting results to the collector: batches of gzip
// NDJSON, retries with backoff, and what to drop when it cannot.
package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/internal/result"
)

var (
	shippedTotal    = metrics.NewCounter("meridian_agent_ship_shipped_total")
	postsFailed     = metrics.NewCounter("meridian_agent_ship_posts_failed_total")
	droppedRejected = metrics.NewCounter(`meridian_agent_ship_dropped_total{reason="rejected"}`)
	droppedInvalid  = metrics.NewCounter(`meridian_agent_ship_dropped_total{reason="invalid"}`)
	// Every post's round trip, whatever the answer (or none).
	postDuration = metrics.NewHistogram("meridian_agent_ship_duration_seconds")
)

// Queue is where the shipper reads results from (the agent's disk spool,
// agent/spool.Queue). Peek returns up to n of the oldest results without
// removing them; Ack(n) removes the first n of the last Peek once the
// collector has them (or they were dropped as bad).
type Queue interface {
	Peek(n int) []*result.Result
	Ack(n int)
}

// Path is where the collector takes results.
const Path = "/v1/results"

// Defaults.
const (
	DefaultInterval    = time.Second
	DefaultBatch       = 500
	DefaultMaxBackoff  = 60 * time.Second
	DefaultPostTimeout = 30 * time.Second
)

// Options configure a Shipper.
type Options struct {
	Collector  string // base URL, such as http://127.0.0.1:8080
	Token      string
	Interval   time.Duration
	Batch      int
	MaxBackoff time.Duration
	Client     *http.Client
	Logger     *slog.Logger

	sleep func(ctx context.Context, d time.Duration) error // tests make it instant
	now   func() time.Time
}

// Stats counts what a Shipper did; the same counts are exported as metrics.
type Stats struct {
	Shipped, FailedPosts, Rejected, Invalid int64
}

// Shipper sends queued results to the collector.
type Shipper struct {
	q     Queue
	opts  Options
	url   string
	fails int // consecutive failed posts
	log   *errLog
	// unsure counts the queue's oldest results that may have reached the
	// collector already (see result.ReplayHeader).
	unsure int
	// batch is how many results a post takes: opts.Batch, halved while
	// the collector answers 413 (a batch larger than it takes), grown back
	// after each accepted post.
	batch int
	// zw and nd are reused by every post (Run and Flush never run at
	// once): a fresh gzip.Writer allocates about 800 KB of compressor
	// state, which at one post a second was most of what the agent
	// allocated and so most of its GC work.
	zw *gzip.Writer
	nd []byte

	shipped, failedPosts, rejected, invalid atomic.Int64
}

// New returns a Shipper reading from q. Run and Flush must not run at once.
func New(q Queue, opts Options) *Shipper {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: DefaultPostTimeout}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.sleep == nil {
		opts.sleep = sleep
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	s := &Shipper{q: q, opts: opts, url: strings.TrimRight(opts.Collector, "/") + Path,
		log: &errLog{logger: opts.Logger, now: opts.now}, batch: opts.Batch}
	if l, ok := q.(interface{ Len() int }); ok {
		s.unsure = l.Len() // an earlier run may have posted them before it stopped
	}
	return s
}

// Stats returns what this Shipper did so far.
func (s *Shipper) Stats() Stats {
	return Stats{Shipped: s.shipped.Load(), FailedPosts: s.failedPosts.Load(), Rejected: s.rejected.Load(), Invalid: s.invalid.Load()}
}

// postGrace is how long a post in flight when Run's ctx ends may finish:
// cutting it off would only make Flush send the same batch again.
const postGrace = 2 * time.Second

// Run ships every interval, backing off on failure, until ctx is done.
func (s *Shipper) Run(ctx context.Context) {
	postCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(postGrace, cancel) })
	defer stop()
	for {
		wait := s.opts.Interval
		if err := s.drain(ctx, postCtx); err != nil {
			wait = s.backoff(err)
		}
		if s.opts.sleep(ctx, wait) != nil {
			return
		}
	}
}

// Flush ships what is queued, retrying until ctx is done.
func (s *Shipper) Flush(ctx context.Context) error {
	for {
		err := s.drain(ctx, ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cannot flush the results left: %w (last error: %v)", ctx.Err(), err)
		}
		if serr := s.opts.sleep(ctx, s.backoff(err)); serr != nil {
			return fmt.Errorf("cannot flush the results left: %w (last error: %v)", serr, err)
		}
	}
}

// drain posts batches until the queue is empty, a post fails or ctx is
// done; each post runs under postCtx.
func (s *Shipper) drain(ctx, postCtx context.Context) error {
	for ctx.Err() == nil {
		want := s.batch
		batch := s.q.Peek(want)
		if len(batch) == 0 {
			return nil
		}
		err := s.post(postCtx, batch)
		if errors.Is(err, errTooLarge) {
			s.batch = max(1, len(batch)/2) // nothing stored: try again at once, smaller
			continue
		}
		if err != nil {
			s.unsure = max(s.unsure, len(batch))
			return err
		}
		s.q.Ack(len(batch))
		s.unsure = max(0, s.unsure-len(batch))
		s.batch = min(s.opts.Batch, 2*s.batch)
		if len(batch) < want {
			return nil
		}
	}
	return ctx.Err()
}

// errTooLarge: the collector answered 413 to a batch of more than one
// result, which it stored none of; drain halves the batch and goes on.
var errTooLarge = errors.New("collector refused the batch as too large")

// retryError is a failed post worth retrying.
type retryError struct {
	err        error
	retryAfter time.Duration // from the collector, 0 if it did not say
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// post sends one batch. nil means the batch may leave the queue: the
// collector has it, or rejected it as bad (retrying would not help).
func (s *Shipper) post(ctx context.Context, batch []*result.Result) error {
	body, n, err := s.encode(batch)
	if err != nil {
		return &retryError{err: err}
	}
	if n == 0 {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return &retryError{err: fmt.Errorf("cannot build request for %s: %w", s.url, err)}
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	if s.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	}
	if s.unsure > 0 {
		req.Header.Set(result.ReplayHeader, "1")
	}
	start := time.Now()
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		postDuration.UpdateDuration(start)
		return s.failed(&retryError{err: fmt.Errorf("cannot post %d results: %w", n, err)}, false)
	}
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	postDuration.UpdateDuration(start)
	return s.judge(resp, n, strings.TrimSpace(string(reason)))
}

func (s *Shipper) judge(resp *http.Response, n int, reason string) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		s.shipped.Add(int64(n))
		shippedTotal.Add(n)
		if s.fails > 0 {
			s.log.recovered(s.fails)
		}
		s.fails = 0
		return nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return s.failed(&retryError{err: fmt.Errorf(
			"collector refused the token (%d %s): set the agent's token with --token or MERIDIAN_TOKEN", code, reason)}, true)
	case code == http.StatusRequestEntityTooLarge && n > 1:
		s.opts.Logger.Warn("collector refused a batch as too large; sending smaller ones", "results", n, "reason", reason)
		return errTooLarge
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		s.rejected.Add(int64(n))
		droppedRejected.Add(n)
		s.opts.Logger.Error("collector rejected a batch; dropping it", "status", code, "results", n, "reason", reason)
		return nil
	}
	err := &retryError{err: fmt.Errorf("collector answered %d to %d results: %s", code, n, reason)}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		err.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.opts.now())
	}
	return s.failed(err, false)
}

func (s *Shipper) failed(err *retryError, loud bool) error {
	s.fails++
	s.failedPosts.Add(1)
	postsFailed.Inc()
	s.log.failed(err, s.fails, loud)
	return err
}

// encode builds the gzip NDJSON body, leaving out results the collector
// would reject (one bad result must not sink a whole batch).
func (s *Shipper) encode(batch []*result.Result) ([]byte, int, error) {
	nd := s.nd[:0]
	n := 0
	for _, r := range batch {
		err := r.Validate()
		if err == nil {
			nd, err = result.AppendNDJSON(nd, r)
		}
		if err != nil {
			s.invalid.Add(1)
			droppedInvalid.Inc()
			s.opts.Logger.Error("dropping an invalid result", "check", r.Check, "id", r.ID, "err", err)
			continue
		}
		n++
	}
	if cap(nd) <= maxKeptBytes {
		s.nd = nd
	}
	// The body itself is new each time: the transport may still read it
	// after Do returns.
	buf := bytes.NewBuffer(make([]byte, 0, len(nd)/4+64))
	if s.zw == nil {
		// BestSpeed: a batch of a few results costs half the CPU of the
		// default level for about 15 % more bytes, a few hundred a second.
		s.zw, _ = gzip.NewWriterLevel(buf, gzip.BestSpeed)
	} else {
		s.zw.Reset(buf)
	}
	s.zw.Write(nd)
	if err := s.zw.Close(); err != nil {
		return nil, 0, fmt.Errorf("cannot compress batch: %w", err)
	}
	return buf.Bytes(), n, nil
}

// maxKeptBytes bounds the NDJSON buffer kept between posts: a backlog's
// big batches should not pin their memory for good.
const maxKeptBytes = 256 << 10

// backoff says how long to wait after err: the collector's Retry-After when
// it gave one, else exponential with jitter up to MaxBackoff.
func (s *Shipper) backoff(err error) time.Duration {
	var re *retryError
	if errors.As(err, &re) && re.retryAfter > 0 {
		// At least what the collector asked, and up to half again: a fleet
		// told the same Retry-After must not come back in step.
		ra := min(re.retryAfter, 10*time.Minute)
		return ra + rand.N(ra/2+1)
	}
	base := s.opts.Interval
	for i := 1; i < s.fails && base < s.opts.MaxBackoff; i++ {
		base *= 2
	}
	base = min(base, s.opts.MaxBackoff)
	// Equal jitter: at least half the step, so a fleet does not retry in step.
	return base/2 + rand.N(base/2+1)
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errLog logs ship failures at most once a minute, with how many it held
// back, so an outage is a few lines rather than one per retry.
type errLog struct {
	logger     *slog.Logger
	now        func() time.Time
	last       time.Time
	suppressed int
}

func (l *errLog) failed(err error, consecutive int, loud bool) {
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < time.Minute {
		l.suppressed++
		return
	}
	level := slog.LevelWarn
	if loud {
		level = slog.LevelError
	}
	l.logger.Log(context.Background(), level, "cannot ship results; will retry",
		"err", err, "consecutive_failures", consecutive, "not_logged", l.suppressed)
	l.last, l.suppressed = now, 0
}

func (l *errLog) recovered(fails int) {
	l.logger.Info("shipping results again", "after_failed_posts", fails)
	l.last, l.suppressed = time.Time{}, 0
}
