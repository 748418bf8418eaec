package sched

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// Update while a removed check is in flight: its run finishes and is
// published, it never runs again; a new check starts; a changed check runs
// with its new settings; an unchanged one keeps its loop and schedule.
func TestUpdate(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	run := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		if c.Name == "b" {
			<-release // b's first run is in flight across the update
		}
		r := result.New("", c.Name, c.Kind, c.Target, time.Now())
		r.OK = true
		return []*result.Result{r}, nil
	}
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	s, clk, sink := newTest(t, []probe.Check{check("a"), check("b"), check("c")}, run, 0)
	eventually(t, "the stagger timers", func() bool { return clk.pending() == 3 })
	clk.Advance(10 * time.Second) // past every stagger: a, b and c run; b blocks
	got := map[string]int{}
	for range 2 {
		got[sink.next(t).Check]++
	}
	if got["a"] != 1 || got["c"] != 1 {
		t.Fatalf("first round: got %v, want a and c (b is in flight)", got)
	}
	eventually(t, "b in flight and three tickers", func() bool {
		return s.checks[1].running.Load() && clk.pending() == 3
	})
	a, b := s.checks[0], s.checks[1]

	c2 := check("c")
	c2.Target = "http://changed/"
	s.Update([]probe.Check{check("a"), c2, check("d")})

	if s.checks[0] != a {
		t.Error("unchanged check a got a new loop; want it to keep its schedule")
	}
	if names := checkNames(s.Checks()); names != "a,c,d" {
		t.Errorf("got checks %s after the update, want a,c,d", names)
	}
	// a's ticker stays; b's and the old c's loops end; c and d wait for their stagger.
	eventually(t, "old loops to end and new ones to start", func() bool {
		return clk.pending() == 3 && clk.timers() == 2
	})
	if !b.running.Load() {
		t.Fatal("the update ended b's run in flight")
	}

	once.Do(func() { close(release) })
	if r := sink.next(t); r.Check != "b" {
		t.Fatalf("got a result for %q, want b's run in flight to finish and be published", r.Check)
	}
	eventually(t, "b's run to end", func() bool { return !b.running.Load() })

	for round := range 2 {
		clk.Advance(10 * time.Second) // a's next tick; the stagger of c and d, then their ticks
		got := map[string]*result.Result{}
		for range 3 {
			r := sink.next(t)
			got[r.Check] = r
		}
		if got["a"] == nil || got["c"] == nil || got["d"] == nil {
			t.Fatalf("round %d: got %v, want a, c and d", round, keys(got))
		}
		if got["c"].Target != "http://changed/" {
			t.Errorf("round %d: changed check c ran against %q, want its new target", round, got["c"].Target)
		}
		sink.none(t) // in particular, no b
		for _, c := range s.checks {
			eventually(t, "runs to end", func() bool { return !c.running.Load() })
		}
	}
	if st := s.Stats(); st.Runs != 3+2*3 {
		t.Errorf("got %d runs, want 9 (3 before, b's in flight counted once, then 3 a round)", st.Runs)
	}
}

// A changed check does not run while its old self is still in flight.
func TestUpdateChangedWaitsForInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 10)
	run := func(ctx context.Context, c *probe.Check) ([]*result.Result, error) {
		started <- c.Target
		if c.Target == "http://x/" {
			<-release
		}
		return okProbe(ctx, c)
	}
	s, clk, sink := newTest(t, []probe.Check{check("a")}, run, 0)
	eventually(t, "the stagger timer", func() bool { return clk.pending() == 1 })
	clk.Advance(10 * time.Second)
	if got := <-started; got != "http://x/" {
		t.Fatalf("got a run against %q", got)
	}
	c2 := check("a")
	c2.Target = "http://y/"
	s.Update([]probe.Check{c2})
	eventually(t, "the old ticker to stop and the new stagger timer", func() bool {
		return clk.pending() == 1 && clk.timers() == 1
	})
	clk.Advance(10 * time.Second) // past the new stagger, old run still going
	eventually(t, "a skipped run", func() bool { return s.Stats().Overruns == 1 })
	select {
	case got := <-started:
		t.Fatalf("the changed check ran against %q while its old run was in flight", got)
	default:
	}
	close(release)
	if r := sink.next(t); r.Target != "http://x/" {
		t.Errorf("got %q, want the old run's result", r.Target)
	}
	eventually(t, "the old run to end", func() bool { return !s.checks[0].running.Load() })
	clk.Advance(10 * time.Second)
	if r := sink.next(t); r.Target != "http://y/" {
		t.Errorf("got %q, want the new target", r.Target)
	}
}

func TestUpdateBeforeStartAndAfterStop(t *testing.T) {
	clk := newFakeClock()
	sink := make(chanSink, 10)
	s := newWithClock([]probe.Check{check("a")}, sink, Options{Agent: "x", Jitter: -1, Run: okProbe, Logger: quiet()}, clk)
	s.Update([]probe.Check{check("b")})
	s.Start()
	eventually(t, "one stagger timer", func() bool { return clk.pending() == 1 })
	clk.Advance(10 * time.Second)
	if r := sink.next(t); r.Check != "b" {
		t.Errorf("got %q, want b", r.Check)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Update([]probe.Check{check("c")}) // no-op, no panic
	if names := checkNames(s.Checks()); names != "b" {
		t.Errorf("got %s after Stop, want b", names)
	}
}

func checkNames(cs []probe.Check) string {
	var s string
	for i, c := range cs {
		if i > 0 {
			s += ","
		}
		s += c.Name
	}
	return s
}

func keys(m map[string]*result.Result) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// timers counts live one-shot timers (stagger waits).
func (f *fakeClock) timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.waiters {
		if !w.stopped && w.every == 0 {
			n++
		}
	}
	return n
}
