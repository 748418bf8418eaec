package server

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
)

// fakeClock is the buckets' clock in tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBucketsRefillAndSayWhen(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	b := newBuckets("test", 2, 3, 100, clock.now)
	for i := range 3 {
		if ok, _ := b.allow(1); !ok {
			t.Fatalf("request %d of the burst of 3 refused", i+1)
		}
	}
	ok, wait := b.allow(1)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: got %v, wait %v; want refused, wait 500ms at 2/s", ok, wait)
	}
	if ok, _ := b.allow(2); !ok {
		t.Fatal("another key was refused: buckets must be per key")
	}
	clock.advance(500 * time.Millisecond)
	if ok, _ := b.allow(1); !ok {
		t.Fatal("refused after the wait it named")
	}
	if b := newBuckets("test", 0, 3, 100, clock.now); b != nil {
		t.Fatal("rate 0 must mean no buckets (no limit)")
	}
	var none *buckets
	if ok, _ := none.allow(1); !ok {
		t.Fatal("no buckets must allow everything")
	}
}

func TestBucketsBoundedMemory(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	b := newBuckets("test", 1, 1, 8, clock.now)
	b.allow(0)
	if ok, _ := b.allow(0); ok {
		t.Fatal("key 0 should have spent its burst of 1")
	}
	for k := uint64(1); k <= 1000; k++ {
		b.allow(k)
		if n := len(b.cur) + len(b.old); n > 8 {
			t.Fatalf("after %d keys %d buckets are kept, want at most 8", k, n)
		}
	}
	// Pushed out by the flood of keys, key 0 comes back with a full
	// bucket: the price of bounded memory, paid only by keys gone quiet.
	if ok, _ := b.allow(0); !ok {
		t.Fatal("a bucket dropped for room should come back full")
	}
}

func TestSourceKey(t *testing.T) {
	key := func(s string) (uint64, bool) { return sourceKey(netip.MustParseAddr(s)) }
	a, okA := key("198.51.100.7")
	b, _ := key("198.51.100.8")
	c, _ := key("2001:db8:1:2::1")
	d, _ := key("2001:db8:1:2:ffff::9")
	e, _ := key("2001:db8:1:3::1")
	if !okA || a == b {
		t.Errorf("two IPv4 addresses must have buckets of their own")
	}
	if c != d || c == e {
		t.Errorf("IPv6 must be limited per /64: same /64 %v, other /64 %v", c == d, c != e)
	}
	for _, s := range []string{"127.0.0.1", "::1"} {
		if _, ok := key(s); ok {
			t.Errorf("%s is limited; loopback must not be (a local proxy not listed as trusted)", s)
		}
	}
	if _, ok := sourceKey(netip.Addr{}); ok {
		t.Error("an unknown address must not be limited")
	}
}

func TestSiteKeyOf(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`{"v":1,"site":"mrs_abc","pv":"x"}`, "mrs_abc"},
		{`{"nav":{"site":"inner"},"site":"outer"}`, "outer"},
		{`{"v":1}`, ""},
		{`{"site":12}`, ""},
		{`[1,2]`, ""},
		{`{"v":1,"site":"trunc`, ""},
		{``, ""},
	} {
		if got := siteKeyOf([]byte(tc.raw)); got != tc.want {
			t.Errorf("siteKeyOf(%s) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestInflightBudget(t *testing.T) {
	f := newInflight("test", 100)
	a, b := f.ticket(), f.ticket()
	if !a.take(60) || b.take(50) || !b.take(40) || !f.full() {
		t.Fatal("want 60 then 40 taken of 100, 50 refused, the budget full")
	}
	a.release()
	if f.full() || !b.take(50) {
		t.Fatal("what a ticket released must be available again")
	}
	b.release()
	big := f.ticket()
	if !big.take(500) {
		t.Fatal("a request larger than the budget must pass alone, or never")
	}
	if f.ticket().take(1) {
		t.Fatal("while it is held nothing else may pass")
	}
	big.release()

	c := f.ticket()
	_, err := io.ReadAll(io.LimitReader(c.reader(strings.NewReader(strings.Repeat("x", 300))), 1000))
	if err != nil {
		t.Fatalf("a body read alone may exceed the budget: %v", err)
	}
	d := f.ticket()
	if _, err := io.ReadAll(d.reader(strings.NewReader("more"))); !errors.Is(err, errBusy) {
		t.Fatalf("reading while the budget is spent: err %v, want errBusy", err)
	}
	c.release()
	d.release()
	if f.used.Load() != 0 {
		t.Fatalf("%d bytes still held after every release", f.used.Load())
	}
}

func TestTooManySaysRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want string
	}{{0, "1"}, {200 * time.Millisecond, "1"}, {1200 * time.Millisecond, "2"}, {30 * time.Second, "30"}} {
		w := httptest.NewRecorder()
		tooMany(w, tc.wait, "source_rate", "slow down")
		if w.Code != 429 || w.Header().Get("Retry-After") != tc.want {
			t.Errorf("wait %v: got %d Retry-After %q, want 429 %q", tc.wait, w.Code, w.Header().Get("Retry-After"), tc.want)
		}
	}
}

// oneSite is a Sites with one registered key.
type oneSite string

func (s oneSite) Lookup(_ context.Context, key string) (store.Site, bool, error) {
	return store.Site{Key: key}, key == string(s), nil
}
func (oneSite) KnownOrigin(context.Context, string) (bool, error) { return true, nil }

func TestSiteBucketsOnlyForRegisteredSites(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newBeaconLimits(Limits{SiteRate: 1, SiteBurst: 1, Now: clock.now}, oneSite("mrs_known"))
	w := httptest.NewRecorder()
	for i := range 5 {
		tk, ok := l.admit(context.Background(), w, []byte(`{"site":"mrs_made_up_`+string(rune('a'+i))+`"}`))
		if !ok {
			t.Fatal("an unknown site was refused by the limits; the decoder says what is wrong with it")
		}
		tk.release()
	}
	if n := len(l.sites.cur) + len(l.sites.old); n != 0 {
		t.Fatalf("%d buckets for unknown site keys, want none", n)
	}
	tk, ok := l.admit(context.Background(), w, []byte(`{"site":"mrs_known"}`))
	if !ok {
		t.Fatal("the registered site's first beacon was refused")
	}
	tk.release()
	if _, ok := l.admit(context.Background(), w, []byte(`{"site":"mrs_known"}`)); ok || w.Code != 429 {
		t.Fatalf("past its burst the site got %d, want 429", w.Code)
	}
	if l.bytes.used.Load() != 0 {
		t.Fatal("a refused beacon holds bytes of the budget")
	}
}
