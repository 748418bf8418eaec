// Package sched owns when checks run: intervals, stagger, jitter, timeouts,
// a concurrency bound, and containing probes that overrun or panic.
package sched

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// DefaultConcurrency bounds how many probes run at once.
const DefaultConcurrency = 32

var (
	runsTotal        = metrics.NewCounter("meridian_agent_sched_runs_total")
	overrunsTotal    = metrics.NewCounter("meridian_agent_sched_overruns_total")
	panicsTotal      = metrics.NewCounter("meridian_agent_sched_panics_total")
	probeErrorsTotal = metrics.NewCounter("meridian_agent_sched_probe_errors_total")
)

// checksTotal counts results by kind and outcome: "ok", the error class
// (a short stable constant, so the series stay few), or "cannot_run" when
// the probe could not run at all.
func checksTotal(kind, outcome string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`meridian_agent_checks_total{kind="` + kind + `",result="` + outcome + `"}`)
}

func outcome(r *result.Result) string {
	switch {
	case r.OK:
		return "ok"
	case r.Error == "":
		return "failed"
	}
	return r.Error
}

// Sink receives the results of each run. It must not block for long: the
// run's concurrency slot is held until Publish returns.
type Sink interface {
	Publish([]*result.Result)
}

// Options configure a Scheduler.
type Options struct {
	Agent       string // stamped on every result
	Concurrency int    // default DefaultConcurrency
	// Jitter is the most a run is delayed past its tick; 0 means
	// min(interval/20, 500ms), negative means none.
	Jitter time.Duration
	Run    probe.Func // default probe.Run
	// Host, if set, describes the host's noise (CPU steal, clock sync); it
	// is stamped on every result.
	Host   func() *result.Host
	Logger *slog.Logger
}

// Stats counts what a Scheduler did; the same counts are exported as metrics.
type Stats struct {
	Runs, Overruns, Panics, ProbeErrors int64
}

// Scheduler runs checks on their intervals until Stop.
type Scheduler struct {
	opts  Options
	sink  Sink
	clock clock
	sem   chan struct{}

	mu      sync.Mutex // guards checks, started and stopped
	checks  []*checkState
	started bool
	stopped bool

	loopCtx   context.Context // cancelled by Stop: no new runs
	stopLoops context.CancelFunc
	runCtx    context.Context // cancelled when Stop gives up waiting
	abortRuns context.CancelFunc
	loops     sync.WaitGroup
	inflight  sync.WaitGroup

	runs, overruns, panics, probeErrors atomic.Int64
}

type checkState struct {
	check   probe.Check
	fp      string // the check's configuration as JSON, to tell a changed check from the same one
	stagger time.Duration
	jitter  time.Duration
	// running is shared with the state a changed check replaces, so the new
	// one never runs while the old one's last run is still in flight.
	running *atomic.Bool
	stop    chan struct{} // closed when Update removes or replaces the check
}

func (s *Scheduler) newState(c probe.Check) *checkState {
	fp, err := json.Marshal(c)
	if err != nil { // cannot happen for configs decoded from YAML; treat as always changed
		fp = []byte(fmt.Sprintf("unmarshalable %p", &c))
	}
	return &checkState{
		check:   c,
		fp:      string(fp),
		stagger: Stagger(s.opts.Agent, c.Name, c.Interval),
		jitter:  jitterFor(s.opts.Jitter, c.Interval),
		running: new(atomic.Bool),
		stop:    make(chan struct{}),
	}
}

// New returns a Scheduler for checks (already validated: interval ≥ 1s,
// 0 < timeout ≤ interval) that publishes to sink. Start starts it.
func New(checks []probe.Check, sink Sink, opts Options) *Scheduler {
	return newWithClock(checks, sink, opts, realClock{})
}

func newWithClock(checks []probe.Check, sink Sink, opts Options, clk clock) *Scheduler {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Run == nil {
		opts.Run = probe.Run
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Scheduler{opts: opts, sink: sink, clock: clk, sem: make(chan struct{}, opts.Concurrency)}
	for _, c := range checks {
		s.checks = append(s.checks, s.newState(c))
	}
	s.loopCtx, s.stopLoops = context.WithCancel(context.Background())
	s.runCtx, s.abortRuns = context.WithCancel(context.Background())
	return s
}

// Stagger spreads first runs over the interval, the same way on every start
// of the same agent, so restarts do not shift load and agents do not march
// in step.
func Stagger(agent, check string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(agent))
	h.Write([]byte{0})
	h.Write([]byte(check))
	return time.Duration(h.Sum64() % uint64(interval))
}

func jitterFor(j, interval time.Duration) time.Duration {
	switch {
	case j < 0:
		return 0
	case j > 0:
		return j
	}
	return min(interval/20, 500*time.Millisecond)
}

// Start starts one loop per check.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	for _, c := range s.checks {
		s.loops.Add(1)
		go s.loop(c)
	}
}

// Update replaces the set of checks while the scheduler runs, without
// cancelling any run in flight: a new check starts (its first run staggered
// from now, as on Start), a removed one runs no more but its run in flight
// finishes and is published, a changed one (same name, other settings)
// restarts with its new settings once its run in flight is over, and an
// unchanged one keeps its schedule. Checks are matched by name; names must
// be unique (a duplicate is logged and ignored). Update after Stop does
// nothing.
func (s *Scheduler) Update(checks []probe.Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	old := make(map[string]*checkState, len(s.checks))
	for _, c := range s.checks {
		old[c.check.Name] = c
	}
	next := make([]*checkState, 0, len(checks))
	seen := make(map[string]bool, len(checks))
	var added, changed, kept []string
	var start []*checkState
	for _, c := range checks {
		if seen[c.Name] {
			s.opts.Logger.Error("ignoring a second check with the same name", "check", c.Name)
			continue
		}
		seen[c.Name] = true
		st := s.newState(c)
		prev, ok := old[c.Name]
		switch {
		case ok && prev.fp == st.fp:
			next = append(next, prev)
			kept = append(kept, c.Name)
			continue
		case ok:
			close(prev.stop)
			st.running = prev.running
			changed = append(changed, c.Name)
		default:
			added = append(added, c.Name)
		}
		next = append(next, st)
		start = append(start, st)
	}
	var removed []string
	for _, c := range s.checks {
		if !seen[c.check.Name] {
			close(c.stop)
			removed = append(removed, c.check.Name)
		}
	}
	s.checks = next
	if s.started {
		for _, c := range start {
			s.loops.Add(1)
			go s.loop(c)
		}
	}
	if len(added)+len(changed)+len(removed) > 0 {
		s.opts.Logger.Info("checks updated", "added", added, "changed", changed, "removed", removed, "unchanged", len(kept))
	}
}

// Checks returns the checks now scheduled.
func (s *Scheduler) Checks() []probe.Check {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]probe.Check, len(s.checks))
	for i, c := range s.checks {
		out[i] = c.check
	}
	return out
}

// abortGrace is how long Stop waits, after cancelling the runs still in
// flight, for them to return: a probe obeys its context, so this is quick,
// and afterwards no run can publish into a sink the caller is closing.
const abortGrace = time.Second

// Stop stops starting runs and waits for those in flight until ctx is done;
// then it cancels them, drops their results and returns ctx's error. When
// Stop returns, every result it did not drop has been published.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	s.stopLoops()
	s.mu.Unlock()
	s.loops.Wait()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		s.abortRuns()
		return nil
	case <-ctx.Done():
	}
	n := s.running()
	s.abortRuns()
	t := time.NewTimer(abortGrace)
	defer t.Stop()
	select {
	case <-done:
		return fmt.Errorf("cannot wait for runs in flight: %w; abandoned %d checks", ctx.Err(), n)
	case <-t.C:
		return fmt.Errorf("cannot wait for runs in flight: %w; abandoned %d checks, some still running after cancel (a probe ignores its context)", ctx.Err(), n)
	}
}

// running counts the checks with a run in flight (removed ones aside).
func (s *Scheduler) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.checks {
		if c.running.Load() {
			n++
		}
	}
	return n
}

// Stats returns what this Scheduler did so far.
func (s *Scheduler) Stats() Stats {
	return Stats{Runs: s.runs.Load(), Overruns: s.overruns.Load(), Panics: s.panics.Load(), ProbeErrors: s.probeErrors.Load()}
}

func (s *Scheduler) loop(c *checkState) {
	defer s.loops.Done()
	if !s.sleep(c, s.clock.After(c.stagger)) {
		return
	}
	if c.jitter > 0 {
		s.jitteredLoop(c)
		return
	}
	t := s.clock.NewTicker(c.check.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop: // a tick and the stop can be ready at once
			return
		default:
		}
		s.launch(c)
		if !s.sleep(c, t.C()) {
			return
		}
	}
}

// jitteredLoop runs c at each tick plus a jitter drawn afresh for each run,
// with one timer set for both: waiting for the tick and then for the
// jitter woke the process twice per run, and on an idle agent each wake-up
// costs more CPU (the Go runtime's own, mostly) than the run's bookkeeping.
// A tick missed while the loop was held up is dropped, as a ticker drops it.
func (s *Scheduler) jitteredLoop(c *checkState) {
	tick := s.clock.Now()
	for {
		due := tick.Add(rand.N(c.jitter))
		if !s.sleep(c, s.clock.After(due.Sub(s.clock.Now()))) {
			return
		}
		select {
		case <-c.stop:
			return
		default:
		}
		s.launch(c)
		now := s.clock.Now()
		tick = tick.Add(c.check.Interval)
		for tick.Before(now) {
			tick = tick.Add(c.check.Interval)
		}
	}
}

// sleep waits for ch and says whether it came before a Stop or c's removal.
func (s *Scheduler) sleep(c *checkState, ch <-chan time.Time) bool {
	select {
	case <-s.loopCtx.Done():
		return false
	case <-c.stop:
		return false
	case <-ch:
		return true
	}
}

// launch starts a run unless the previous one is still going.
func (s *Scheduler) launch(c *checkState) {
	if !c.running.CompareAndSwap(false, true) {
		s.overruns.Add(1)
		overrunsTotal.Inc()
		s.opts.Logger.Warn("check overran its interval; skipping this run",
			"check", c.check.Name, "interval", c.check.Interval, "timeout", c.check.Timeout)
		return
	}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		defer c.running.Store(false)
		s.run(c)
	}()
}

func (s *Scheduler) run(c *checkState) {
	select {
	case <-s.runCtx.Done():
		return
	case s.sem <- struct{}{}:
	}
	defer func() { <-s.sem }()
	ctx, cancel := context.WithTimeout(s.runCtx, c.check.Timeout)
	defer cancel()
	results := s.safeRun(ctx, &c.check)
	if s.runCtx.Err() != nil || len(results) == 0 {
		return // aborted by Stop: the results would only say "cancelled"
	}
	var host *result.Host
	if s.opts.Host != nil {
		host = s.opts.Host()
	}
	for _, r := range results {
		r.Agent = s.opts.Agent
		if r.Check == "" {
			r.Check = c.check.Name
		}
		if host != nil && r.Host == nil {
			h := *host
			r.Host = &h
		}
		checksTotal(r.Kind, outcome(r)).Inc()
	}
	s.sink.Publish(results)
}

// safeRun runs the probe; a panic becomes a failed result, never a crash.
func (s *Scheduler) safeRun(ctx context.Context, c *probe.Check) (results []*result.Result) {
	start := s.clock.Now()
	s.runs.Add(1)
	runsTotal.Inc()
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			panicsTotal.Inc()
			s.opts.Logger.Error("probe panicked", "check", c.Name, "kind", c.Kind, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res := result.New(s.opts.Agent, c.Name, c.Kind, c.Target, start)
			res.Fail(result.ErrProbePanic, fmt.Errorf("%s probe panicked: %v", c.Kind, p))
			res.TotalMs = result.Ms(max(0, s.clock.Now().Sub(start)))
			results = []*result.Result{res}
		}
	}()
	results, err := s.opts.Run(ctx, c)
	if err != nil {
		s.probeErrors.Add(1)
		probeErrorsTotal.Inc()
		checksTotal(c.Kind, "cannot_run").Inc()
		s.opts.Logger.Error("cannot run check", "check", c.Name, "err", err)
		return nil
	}
	return results
}

// clock is the time the scheduler sees; tests inject a fake one.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
	NewTicker(d time.Duration) ticker
}

type ticker interface {
	C() <-chan time.Time
	Stop()
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (realClock) NewTicker(d time.Duration) ticker       { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }
