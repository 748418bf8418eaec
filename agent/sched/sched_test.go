package sched

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// fakeClock fires timers and tickers only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
}

type fakeWaiter struct {
	at      time.Time
	every   time.Duration // 0 for a one-shot timer
	ch      chan time.Time
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) add(d, every time.Duration) *fakeWaiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{at: f.now.Add(d), every: every, ch: make(chan time.Time, 1)}
	f.waiters = append(f.waiters, w)
	return w
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time { return f.add(d, 0).ch }
func (f *fakeClock) NewTicker(d time.Duration) ticker       { return &fakeTicker{f, f.add(d, d)} }

type fakeTicker struct {
	f *fakeClock
	w *fakeWaiter
}

func (t *fakeTicker) C() <-chan time.Time { return t.w.ch }
func (t *fakeTicker) Stop() {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.w.stopped = true
}

// Advance moves time on and fires what is due (a ticker once, dropping
// ticks nobody took, as time.Ticker does).
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	var keep []*fakeWaiter
	for _, w := range f.waiters {
		if w.stopped {
			continue
		}
		if !w.at.After(f.now) {
			select {
			case w.ch <- f.now:
			default:
			}
			if w.every == 0 {
				continue
			}
			for !w.at.After(f.now) {
				w.at = w.at.Add(w.every)
			}
		}
		keep = append(keep, w)
	}
	f.waiters = keep
}

// pending counts live timers and tickers.
func (f *fakeClock) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.waiters {
		if !w.stopped {
			n++
		}
	}
	return n
}

// eventually waits for goroutines to reach a state; it is not a timing
// assertion, so the bound is generous.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type chanSink chan *result.Result

func (s chanSink) Publish(rs []*result.Result) {
	for _, r := range rs {
		s <- r
	}
}

func (s chanSink) next(t *testing.T) *result.Result {
	t.Helper()
	select {
	case r := <-s:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no result published")
		return nil
	}
}

func (s chanSink) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-s:
		t.Fatalf("got result %+v, want none", r)
	default:
	}
}

func okProbe(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
	r := result.New("", c.Name, c.Kind, c.Target, time.Now())
	r.OK = true
	return []*result.Result{r}, nil
}

func check(name string) probe.Check {
	return probe.Check{Name: name, Kind: result.KindHTTP, Target: "http://x/", Interval: 10 * time.Second, Timeout: 8 * time.Second}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTest(t *testing.T, checks []probe.Check, run probe.Func, concurrency int) (*Scheduler, *fakeClock, chanSink) {
	t.Helper()
	clk := newFakeClock()
	sink := make(chanSink, 100)
	s := newWithClock(checks, sink, Options{Agent: "ams-1", Concurrency: concurrency, Jitter: -1, Run: run, Logger: quiet()}, clk)
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s, clk, sink
}

func TestStagger(t *testing.T) {
	iv := 60 * time.Second
	a, b := Stagger("ams-1", "home", iv), Stagger("ams-1", "api", iv)
	if a == b || a < 0 || a >= iv || b < 0 || b >= iv {
		t.Errorf("got staggers %v and %v, want two different offsets in [0, %v)", a, b, iv)
	}
	if again := Stagger("ams-1", "home", iv); again != a {
		t.Errorf("got %v then %v, want the same stagger on every start", a, again)
	}
	if Stagger("gru-1", "home", iv) == a {
		t.Errorf("two agents got the same stagger for one check")
	}
	if j := jitterFor(0, 10*time.Second); j != 500*time.Millisecond {
		t.Errorf("got default jitter %v for 10s, want 500ms", j)
	}
	if j := jitterFor(0, 2*time.Second); j != 100*time.Millisecond {
		t.Errorf("got default jitter %v for 2s, want 100ms", j)
	}
}

func TestRunsEveryInterval(t *testing.T) {
	c := check("home")
	s, clk, sink := newTest(t, []probe.Check{c}, okProbe, 0)
	stagger := Stagger("ams-1", "home", c.Interval)
	eventually(t, "the stagger timer", func() bool { return clk.pending() == 1 })
	if stagger > 0 {
		clk.Advance(stagger - 1)
		sink.none(t)
		clk.Advance(1)
	}
	r := sink.next(t)
	if r.Agent != "ams-1" || r.Check != "home" {
		t.Errorf("got agent %q check %q, want ams-1 home", r.Agent, r.Check)
	}
	for i := 2; i <= 3; i++ {
		eventually(t, "the run to finish", func() bool { return !s.checks[0].running.Load() })
		clk.Advance(c.Interval)
		sink.next(t)
		if got := s.Stats().Runs; got != int64(i) {
			t.Errorf("got %d runs, want %d", got, i)
		}
	}
}

func TestOverrunIsSkipped(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	blocking := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		if calls.Add(1) == 1 {
			<-release
		}
		return okProbe(ctx, c)
	}
	c := check("slow")
	s, clk, sink := newTest(t, []probe.Check{c}, blocking, 0)
	eventually(t, "the stagger timer", func() bool { return clk.pending() == 1 })
	clk.Advance(c.Interval) // past the stagger: first run starts and blocks
	eventually(t, "the first run", func() bool { return calls.Load() == 1 })
	eventually(t, "the ticker", func() bool { return clk.pending() == 1 })
	clk.Advance(c.Interval)
	eventually(t, "an overrun", func() bool { return s.Stats().Overruns == 1 })
	close(release)
	sink.next(t)
	eventually(t, "the run to finish", func() bool { return !s.checks[0].running.Load() })
	clk.Advance(c.Interval)
	sink.next(t)
	if st := s.Stats(); st.Runs != 2 || st.Overruns != 1 {
		t.Errorf("got %+v, want 2 runs and 1 overrun", st)
	}
}

func TestPanicBecomesResult(t *testing.T) {
	run := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		if c.Name == "bad" {
			panic("probe bug") // a panic inside the probe, as a nil map write would cause
		}
		return okProbe(ctx, c)
	}
	s, clk, sink := newTest(t, []probe.Check{check("bad"), check("good")}, run, 0)
	eventually(t, "the stagger timers", func() bool { return clk.pending() == 2 })
	clk.Advance(10 * time.Second)
	got := map[string]*result.Result{}
	for range 2 {
		r := sink.next(t)
		got[r.Check] = r
	}
	bad, good := got["bad"], got["good"]
	if bad == nil || bad.OK || bad.Error != result.ErrProbePanic || bad.Agent != "ams-1" || bad.TotalMs == nil {
		t.Errorf("got %+v, want a failed result with class %s", bad, result.ErrProbePanic)
	} else if err := bad.Validate(); err != nil {
		t.Errorf("panic result does not validate: %v", err)
	}
	if good == nil || !good.OK {
		t.Errorf("got %+v for the good check, want ok", good)
	}
	if st := s.Stats(); st.Panics != 1 {
		t.Errorf("got %d panics, want 1", st.Panics)
	}
}

func TestConcurrencyBound(t *testing.T) {
	var now, peak atomic.Int32
	release := make(chan struct{})
	run := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		now.Add(-1)
		return okProbe(ctx, c)
	}
	checks := []probe.Check{check("a"), check("b"), check("c")}
	_, clk, sink := newTest(t, checks, run, 2)
	eventually(t, "the stagger timers", func() bool { return clk.pending() == 3 })
	clk.Advance(10 * time.Second)
	eventually(t, "two runs in flight", func() bool { return now.Load() == 2 })
	close(release)
	for range 3 {
		sink.next(t)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("got %d probes at once, want at most 2", p)
	}
}

func TestTimeoutAndStop(t *testing.T) {
	started := make(chan time.Duration, 1)
	run := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		dl, _ := ctx.Deadline()
		started <- time.Until(dl)
		<-ctx.Done() // a probe that only stops at its deadline
		return okProbe(ctx, c)
	}
	c := check("hang")
	c.Timeout = time.Hour
	clk := newFakeClock()
	sink := make(chanSink, 10)
	s := newWithClock([]probe.Check{c}, sink, Options{Agent: "a", Jitter: -1, Run: run, Logger: quiet()}, clk)
	s.Start()
	eventually(t, "the stagger timer", func() bool { return clk.pending() == 1 })
	clk.Advance(c.Interval)
	if left := <-started; left <= 59*time.Minute || left > time.Hour {
		t.Errorf("got a deadline %v away, want the check's timeout (1h)", left)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // give up at once: Stop cancels the run and drops its result
	if err := s.Stop(ctx); err == nil {
		t.Errorf("got no error from Stop with a run in flight and no time left")
	}
	eventually(t, "the run to end", func() bool { return !s.checks[0].running.Load() })
	sink.none(t)
}

func TestStopWaitsForRuns(t *testing.T) {
	release := make(chan struct{})
	run := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		<-release
		return okProbe(ctx, c)
	}
	s, clk, sink := newTest(t, []probe.Check{check("a")}, run, 0)
	eventually(t, "the stagger timer", func() bool { return clk.pending() == 1 })
	clk.Advance(10 * time.Second)
	eventually(t, "the run", func() bool { return s.checks[0].running.Load() })
	stopped := make(chan error)
	go func() { stopped <- s.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v with a run in flight", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Errorf("got %v, want Stop to wait and return nil", err)
	}
	if r := sink.next(t); r.Check != "a" {
		t.Errorf("got result for %q, want a", r.Check)
	}
}

func TestHostStampedAndCounted(t *testing.T) {
	steal := 12.5
	failing := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		r := result.New("", c.Name, c.Kind, c.Target, time.Now())
		r.Fail(result.ErrConnectRefused, nil)
		return []*result.Result{r}, nil
	}
	c := check("refused")
	clk := newFakeClock()
	sink := make(chanSink, 10)
	s := newWithClock([]probe.Check{c}, sink, Options{Agent: "a", Jitter: -1, Run: failing, Logger: quiet(),
		Host: func() *result.Host { return &result.Host{CPUStealPct: &steal} }}, clk)
	s.Start()
	defer s.Stop(context.Background())
	counter := metrics.GetOrCreateCounter(`meridian_agent_checks_total{kind="http",result="connect_refused"}`)
	before := counter.Get()
	eventually(t, "the stagger timer", func() bool { return clk.pending() == 1 })
	clk.Advance(c.Interval)
	r := sink.next(t)
	if r.Host == nil || r.CPUStealPct == nil || *r.CPUStealPct != 12.5 {
		t.Errorf("got host %+v, want the sampler's figures on the result", r.Host)
	}
	if got := counter.Get() - before; got != 1 {
		t.Errorf("meridian_agent_checks_total{kind=http,result=connect_refused} grew by %d, want 1", got)
	}
}
