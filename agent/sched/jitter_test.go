package sched

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe"
)

// TestJitterOneTimerPerRun: with jitter, each run starts between its tick
// and tick+jitter, and the loop waits on one timer for both.
func TestJitterOneTimerPerRun(t *testing.T) {
	c := check("home")
	jitter := 2 * time.Second
	clk := newFakeClock()
	sink := make(chanSink, 100)
	s := newWithClock([]probe.Check{c}, sink, Options{Agent: "ams-1", Jitter: jitter, Run: okProbe, Logger: quiet()}, clk)
	s.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	}()
	eventually(t, "the stagger timer", func() bool { return clk.pending() == 1 })
	clk.Advance(Stagger("ams-1", "home", c.Interval))
	for run := range 3 {
		// The loop now waits for tick+jitter, on one timer. The last run
		// must have finished too, or this one would be an overrun.
		eventually(t, "the run's timer", func() bool { return clk.pending() == 1 })
		eventually(t, "the run to finish", func() bool { return !s.checks[0].running.Load() })
		if run > 0 {
			clk.Advance(c.Interval - jitter)
		}
		clk.Advance(jitter)
		if r := sink.next(t); r.Check != "home" {
			t.Fatalf("run %d: got a result of %q, want home", run, r.Check)
		}
		sink.none(t)
	}
	if st := s.Stats(); st.Runs != 3 || st.Overruns != 0 {
		t.Fatalf("got %d runs and %d overruns, want 3 and 0", st.Runs, st.Overruns)
	}
}
