package steering_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestRunnerPublishesAndResumes: a Runner on real ClickHouse publishes a
// decision that Latest reads back as it was made, and a second Runner (a
// restart) starts from the stored engine state rather than afresh.
func TestRunnerPublishesAndResumes(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	now := time.Now()
	seedStats(t, chtest.Server(t, o.Database), now)
	if _, _, err := steering.SetPolicy(ctx, conn, "bad.yml", []byte("pools: [{name: www}]\n")); err == nil || !strings.Contains(err.Error(), "bad.yml:1") {
		t.Errorf("an invalid policy: got %v, want an error naming bad.yml:1", err)
	}
	if _, _, _, err := steering.LoadPolicy(ctx, conn); err != steering.ErrNoPolicy {
		t.Errorf("after a refused policy: got %v, want ErrNoPolicy (nothing stored)", err)
	}
	if _, _, err := steering.SetPolicy(ctx, conn, "policy.yml", []byte(statsPolicy)); err != nil {
		t.Fatal(err)
	}
	countries := func(ctx context.Context) (map[string]string, error) { return store.AgentCountries(ctx, conn) }
	if err := store.SetAgentCountry(ctx, conn, "sp-1", "BR"); err != nil {
		t.Fatal(err)
	}

	r := &steering.Runner{Conn: conn, AgentCountry: countries, Logf: t.Logf}
	ds, err := r.Step(ctx, now)
	if err != nil || len(ds) != 1 {
		t.Fatalf("step: %v, %d decisions", err, len(ds))
	}
	br, ok := ds[0].Scope("country:BR")
	if !ok || len(br.Members) != 2 || br.Members[0].Weight <= br.Members[1].Weight {
		t.Fatalf("country:BR: %+v, want cdn-a (p75 ~75 ms) ahead of cdn-b (~175 ms, 9%% errors)", br)
	}
	last, err := steering.Latest(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(t, last.Decisions["www"]), jsonOf(t, ds[0]); got != want {
		t.Errorf("Latest reads back\n%s\nwant the published\n%s", got, want)
	}

	again := &steering.Runner{Conn: conn, AgentCountry: countries, Logf: t.Logf}
	ds2, err := again.Step(ctx, now.Add(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cont, err := r.Step(ctx, now.Add(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(t, ds2[0]), jsonOf(t, cont[0]); got != want {
		t.Errorf("a restarted runner decided\n%s\nthe one that kept running\n%s", got, want)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
