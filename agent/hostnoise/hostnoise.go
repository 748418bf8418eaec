// Package hostnoise owns how noisy the agent's host is while it measures:
// CPU steal over the last minute and the kernel's clock-sync state, stamped
// on every result so the collector can discount measurements from a
// starved or drifting VPS.
package hostnoise

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// Defaults for Options.
const (
	DefaultWindow = time.Minute
	DefaultEvery  = 5 * time.Second
)

// Clock is what the kernel says about the system clock.
type Clock struct {
	Synced bool
	// Offset is the kernel's estimate of the clock's offset from its time
	// source; meaningful only when Synced.
	Offset time.Duration
}

// Options configure a Sampler; the zero value reads the real host.
type Options struct {
	Window time.Duration // steal is averaged over this much time (default 1m)
	Every  time.Duration // Run samples this often (default 5s)

	// ReadStat returns the contents of /proc/stat (tests pass a fixture).
	ReadStat func() ([]byte, error)
	// ReadClock asks the kernel about the clock (adjtimex on Linux); an
	// error leaves the clock fields out.
	ReadClock func() (Clock, error)
	Now       func() time.Time
}

// Sampler keeps the latest host noise figures. It is safe for concurrent
// use: Run samples in the background while the scheduler calls Host.
type Sampler struct {
	opts Options

	mu      sync.Mutex
	samples []cpuSample // oldest first, spanning at most Window
	host    result.Host
}

type cpuSample struct {
	at           time.Time
	steal, total uint64
}

// New returns a Sampler; call Sample or Run to fill it.
func New(opts Options) *Sampler {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.ReadStat == nil {
		opts.ReadStat = func() ([]byte, error) { return os.ReadFile("/proc/stat") }
	}
	if opts.ReadClock == nil {
		opts.ReadClock = readClock
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sampler{opts: opts}
}

// Run samples now and then every opts.Every until ctx is done.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Every)
	defer t.Stop()
	for {
		s.Sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample reads /proc/stat and the clock once. What cannot be read is left
// out of the figures (absent, not zero), never fatal.
func (s *Sampler) Sample() {
	now := s.opts.Now()
	var cpu *cpuSample
	if b, err := s.opts.ReadStat(); err == nil {
		if steal, total, err := ParseStat(b); err == nil {
			cpu = &cpuSample{at: now, steal: steal, total: total}
		}
	}
	clk, clkErr := s.opts.ReadClock()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.host = result.Host{CPUStealPct: s.addCPU(cpu)}
	if clkErr == nil {
		s.host.ClockSynced = &clk.Synced
		if clk.Synced {
			ms := float64(clk.Offset) / float64(time.Millisecond)
			s.host.ClockOffsetMs = &ms
		}
	}
}

// addCPU slides the window and returns the steal percentage across it, nil
// until two samples exist. Callers hold mu.
func (s *Sampler) addCPU(c *cpuSample) *float64 {
	if c == nil {
		s.samples = nil
		return nil
	}
	if n := len(s.samples); n > 0 && (c.total < s.samples[n-1].total || c.steal < s.samples[n-1].steal) {
		s.samples = nil // counters went backwards (a fixture swap, a new boot): start over
	}
	s.samples = append(s.samples, *c)
	// Keep the newest sample at least Window old, so the figure covers the
	// whole window once the agent has run that long.
	for len(s.samples) > 2 && c.at.Sub(s.samples[1].at) >= s.opts.Window {
		s.samples = s.samples[1:]
	}
	first := s.samples[0]
	dt := c.total - first.total
	if len(s.samples) < 2 || dt == 0 {
		return nil
	}
	pct := 100 * float64(c.steal-first.steal) / float64(dt)
	return &pct
}

// Host returns a copy of the latest figures, nil if none are known.
func (s *Sampler) Host() *result.Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.host
	if h.CPUStealPct == nil && h.ClockSynced == nil && h.ClockOffsetMs == nil {
		return nil
	}
	return &h
}

// ParseStat returns the steal and total jiffies of the aggregate "cpu" line
// of /proc/stat. Guest time is already counted in user and nice, so the
// total is user through steal.
func ParseStat(b []byte) (steal, total uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		if len(f) < 9 {
			return 0, 0, fmt.Errorf("cannot read cpu steal from /proc/stat: the cpu line has %d fields, want at least 8 counters (Linux 2.6.11+)", len(f)-1)
		}
		for i := 1; i <= 8; i++ {
			v, err := strconv.ParseUint(string(f[i]), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("cannot read cpu steal from /proc/stat: field %d: %w", i, err)
			}
			total += v
			if i == 8 {
				steal = v
			}
		}
		return steal, total, nil
	}
	return 0, 0, errors.New("cannot read cpu steal from /proc/stat: no aggregate cpu line")
}
