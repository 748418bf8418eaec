package steering_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// pushPool is the pool the router tests push: two CDNs answering
// www.shop.example.
func pushPool(routers ...steering.Router) *steering.Pool {
	return &steering.Pool{
		Name: "www", DNSName: "www.shop.example.", TTL: 30,
		Members: []steering.Member{
			{Name: "cdn-a", Addresses: []string{"192.0.2.10"}},
			{Name: "cdn-b", Addresses: []string{"192.0.2.20"}},
		},
		Routers: routers,
	}
}

// pushDecision is a hand-built decision: global 50/50, country:BR cdn-a
// brWeight / cdn-b the rest, country:US all cdn-b with cdn-a down.
func pushDecision(at time.Time, brWeight int) *steering.Decision {
	up := func(name string, w int) steering.MemberDecision {
		return steering.MemberDecision{Name: name, Weight: w, State: steering.StateUp}
	}
	return &steering.Decision{
		Pool: "www", DNSName: "www.shop.example.", TTL: 30, ComputedAt: at,
		Scopes: []steering.ScopeDecision{
			{Scope: "global", FiguresFrom: "global", Rule: steering.RuleScore, Changed: true, ChangedAt: at,
				Members: []steering.MemberDecision{up("cdn-a", 50), up("cdn-b", 50)}},
			{Scope: "country:BR", FiguresFrom: "country:BR", Rule: steering.RuleScore, Changed: true, ChangedAt: at,
				Members: []steering.MemberDecision{up("cdn-a", brWeight), up("cdn-b", 100-brWeight)}},
			{Scope: "country:US", FiguresFrom: "country:US", Rule: steering.RuleScore, Changed: true, ChangedAt: at,
				Members: []steering.MemberDecision{{Name: "cdn-a", Weight: 0, State: steering.StateDown}, up("cdn-b", 100)}},
		},
	}
}

// TestPushUnreachable: pushes to a missing HAProxy socket and to a closed
// PowerDNS port fail loudly (an error naming each router), are recorded as
// failed in steering_pushes, and leave the published decision as it was.
func TestPushUnreachable(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	d := pushDecision(time.Now().UTC().Truncate(time.Millisecond), 80)
	if err := steering.Publish(ctx, conn, d, &steering.State{}, 1); err != nil {
		t.Fatal(err)
	}
	before, err := steering.Latest(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	closed := closedPort(t)
	pool := pushPool(
		steering.Router{Name: "edge", Kind: steering.RouterHAProxy, Runtime: "unix:" + t.TempDir() + "/missing.sock", Backend: "www", Scope: "global", Servers: map[string]string{"cdn-a": "s1", "cdn-b": "s2"}},
		steering.Router{Name: "dns", Kind: steering.RouterPDNS, API: "http://" + closed, APIKeyEnv: "K", ServerID: "localhost", Zone: "shop.example."},
	)
	var logged []string
	p := &steering.Pusher{Conn: conn, Render: renderers(), Backoff: time.Millisecond,
		Getenv: func(string) string { return "key" }, Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	res, err := p.Push(ctx, d, pool, nil)
	if err == nil || !strings.Contains(err.Error(), "router edge") || !strings.Contains(err.Error(), "router dns") {
		t.Fatalf("got error %v, want one naming routers edge and dns", err)
	}
	if len(logged) != 1 {
		t.Errorf("logged %q, want the failure logged once", logged)
	}
	if len(res) != 2 || res[0].OK || res[1].OK || res[0].Attempts != 2 || res[1].Attempts != 2 {
		t.Errorf("got results %+v, want two failed pushes after 2 attempts each", res)
	}
	last, err := steering.LastPushes(ctx, conn, "www")
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 {
		t.Fatalf("steering_pushes holds %+v, want the two pushes", last)
	}
	for _, r := range last {
		if r.OK || r.Error == "" || r.Attempts != 2 || r.Decision != uint64(d.ComputedAt.UnixNano()) || r.Sent == "" {
			t.Errorf("recorded %+v, want a failed push of the decision with its error, attempts and what was sent", r)
		}
	}
	after, err := steering.Latest(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(t, after.Decisions["www"]), jsonOf(t, before.Decisions["www"]); got != want {
		t.Errorf("after the failed push Latest reads\n%s\nwant the published decision unchanged\n%s", got, want)
	}
}

// TestPusherSync: a step sends only what changed, a failed router is tried
// again once its wait is over (doubling), and unchanged weights are sent
// again after Resync.
func TestPusherSync(t *testing.T) {
	rt := newFakeRuntime(t)
	pool := pushPool(steering.Router{Name: "edge", Kind: steering.RouterHAProxy, Runtime: "tcp:" + rt.addr, Backend: "www", Scope: "country:BR", Servers: map[string]string{"cdn-a": "s1", "cdn-b": "s2"}})
	p := &steering.Pusher{Render: renderers(), Attempts: 1, RetryAfter: 10 * time.Second, Resync: time.Minute}
	t0 := time.Unix(1_800_000_000, 0)
	ctx := context.Background()
	step := func(at time.Duration, br int, wantSent bool) {
		t.Helper()
		res, _ := p.Sync(ctx, t0.Add(at), pushDecision(t0, br), pool, nil)
		if got := len(res) == 1; got != wantSent {
			t.Errorf("at %v (BR %d): pushed %v, want %v", at, br, got, wantSent)
		}
	}
	step(0, 80, true)
	step(15*time.Second, 80, false) // unchanged
	step(30*time.Second, 60, true)  // changed
	rt.fail("No such server.")
	step(45*time.Second, 70, true) // changed, fails: wait 10s
	step(50*time.Second, 70, false)
	step(55*time.Second, 70, true) // due, fails again: wait 20s
	step(70*time.Second, 70, false)
	rt.fail("")
	step(75*time.Second, 70, true)
	step(2*time.Minute, 70, false)
	step(135*time.Second, 70, true) // resync
	want, err := renderers().HAProxy(pushDecision(t0, 70), "country:BR", "www", pool.Routers[0].Servers)
	if got := rt.commands(); err != nil || !strings.HasSuffix(got, strings.Join(want, "\n")) {
		t.Errorf("runtime got %q, want it to end with the last weights %q (%v)", got, want, err)
	}
}

// fakeRuntime is an HAProxy runtime API answering every command with a
// set answer, for tests of the push logic alone.
type fakeRuntime struct {
	addr   string
	mu     sync.Mutex
	answer string
	got    []string
}

func newFakeRuntime(t *testing.T) *fakeRuntime {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeRuntime{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			f.mu.Lock()
			f.got = append(f.got, strings.TrimSpace(line))
			fmt.Fprintf(c, "%s\n", f.answer)
			f.mu.Unlock()
			c.Close()
		}
	}()
	return f
}

func (f *fakeRuntime) fail(answer string) { f.mu.Lock(); f.answer = answer; f.mu.Unlock() }

func (f *fakeRuntime) commands() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.got, "\n")
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
