package hostnoise

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	b, err := os.ReadFile("testdata/proc-stat")
	if err != nil {
		t.Fatal(err)
	}
	steal, total, err := ParseStat(b)
	// user..steal: 26211+217+8728+749398+1485+0+347+1400; guest is in user already.
	if err != nil || steal != 1400 || total != 787786 {
		t.Errorf("got steal %d total %d err %v, want 1400 787786 nil", steal, total, err)
	}
}

func TestParseStatErrors(t *testing.T) {
	old, err := os.ReadFile("testdata/proc-stat-2.6.9")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want string
	}{
		{string(old), "the cpu line has 7 fields, want at least 8 counters"},
		{"cpu0 1 2 3 4 5 6 7 8\n", "no aggregate cpu line"},
		{"", "no aggregate cpu line"},
		{"cpu  1 2 3 x 5 6 7 8\n", `field 4: strconv.ParseUint: parsing "x"`},
	} {
		if _, _, err := ParseStat([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseStat(%q): got %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

// fakeHost serves /proc/stat lines from counters the test moves.
type fakeHost struct {
	now          time.Time
	steal, total uint64
	statErr      error
	clock        Clock
	clockErr     error
}

func (h *fakeHost) sampler() *Sampler {
	return New(Options{
		ReadStat: func() ([]byte, error) {
			if h.statErr != nil {
				return nil, h.statErr
			}
			// user gets the rest so that user..steal add up to total.
			return fmt.Appendf(nil, "cpu  %d 0 0 0 0 0 0 %d 0 0\n", h.total-h.steal, h.steal), nil
		},
		ReadClock: func() (Clock, error) { return h.clock, h.clockErr },
		Now:       func() time.Time { return h.now },
	})
}

// advance moves time by d, the total by jiffies of which steal took pct%.
func (h *fakeHost) advance(d time.Duration, jiffies uint64, pct float64) {
	h.now = h.now.Add(d)
	h.total += jiffies
	h.steal += uint64(float64(jiffies) * pct / 100)
}

func TestStealSlidesOverTheWindow(t *testing.T) {
	h := &fakeHost{now: time.Unix(1_800_000_000, 0), total: 1000, clock: Clock{Synced: true, Offset: 1500 * time.Microsecond}}
	s := h.sampler()
	s.Sample()
	if got := s.Host(); got == nil || got.CPUStealPct != nil {
		t.Fatalf("got %+v after one sample, want no steal figure yet", got)
	}
	steal := func() float64 {
		t.Helper()
		s.Sample()
		got := s.Host()
		if got == nil || got.CPUStealPct == nil {
			t.Fatalf("got %+v, want a steal figure", got)
		}
		return *got.CPUStealPct
	}
	// 1 minute at 10% steal, sampled every 5s.
	for range 12 {
		h.advance(5*time.Second, 500, 10)
		steal()
	}
	if got := steal(); math.Abs(got-10) > 0.01 {
		t.Errorf("got steal %.2f%%, want 10%%", got)
	}
	// Then 30s at 50%: half the window is at 10%, half at 50%.
	for range 6 {
		h.advance(5*time.Second, 500, 50)
		steal()
	}
	if got := steal(); math.Abs(got-30) > 0.01 {
		t.Errorf("got steal %.2f%% over the last minute, want 30%%", got)
	}
	// A full minute at 0%: the 50% has slid out.
	for range 12 {
		h.advance(5*time.Second, 500, 0)
		steal()
	}
	if got := steal(); got != 0 {
		t.Errorf("got steal %.2f%%, want 0%% once the busy minute slid out", got)
	}
	if len(s.samples) > 14 {
		t.Errorf("got %d samples kept, want at most a window's worth", len(s.samples))
	}
}

func TestClock(t *testing.T) {
	h := &fakeHost{now: time.Unix(1_800_000_000, 0), clock: Clock{Synced: true, Offset: -2500 * time.Microsecond}}
	s := h.sampler()
	s.Sample()
	got := s.Host()
	if got == nil || got.ClockSynced == nil || !*got.ClockSynced || got.ClockOffsetMs == nil || *got.ClockOffsetMs != -2.5 {
		t.Errorf("got %+v, want synced with offset -2.5 ms", got)
	}
	h.clock = Clock{Synced: false, Offset: time.Second}
	s.Sample()
	got = s.Host()
	if got == nil || got.ClockSynced == nil || *got.ClockSynced || got.ClockOffsetMs != nil {
		t.Errorf("got %+v, want unsynced and no offset (the kernel's figure means nothing then)", got)
	}
}

func TestNothingReadable(t *testing.T) {
	h := &fakeHost{now: time.Unix(1_800_000_000, 0), statErr: os.ErrNotExist, clockErr: errors.New("EPERM")}
	s := h.sampler()
	s.Sample()
	s.Sample()
	if got := s.Host(); got != nil {
		t.Errorf("got %+v, want nil when neither /proc/stat nor the clock can be read", got)
	}
	// A host without /proc at all (the default reader on a path that is missing).
	s = New(Options{ReadStat: func() ([]byte, error) { return os.ReadFile("/nonexistent/proc/stat") }, ReadClock: h.sampler().opts.ReadClock})
	s.Sample()
	if got := s.Host(); got != nil {
		t.Errorf("got %+v, want nil", got)
	}
}

func TestRealHost(t *testing.T) {
	s := New(Options{})
	s.Sample()
	time.Sleep(50 * time.Millisecond) // the real /proc/stat: its counters move in 10 ms ticks
	s.Sample()
	h := s.Host()
	t.Logf("this host: %+v", h)
	if runtime.GOOS != "linux" {
		return
	}
	// Linux always has /proc/stat: two samples give a steal figure, 0 or more.
	if h == nil || h.CPUStealPct == nil || *h.CPUStealPct < 0 || *h.CPUStealPct > 100 {
		t.Errorf("got host %+v, want a CPU steal percentage in [0, 100] after two samples", h)
	}
}
