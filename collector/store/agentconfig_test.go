package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

func TestAgentConfigs(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	if _, err := store.AddAgent(ctx, conn, "ams-1", "eu-west"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := store.GetAgentConfig(ctx, conn, "ams-1"); err != nil || ok {
		t.Fatalf("before any set: got ok=%v err=%v, want none", ok, err)
	}
	if _, err := store.SetAgentConfig(ctx, conn, "nope", "checks: []"); err == nil || !strings.Contains(err.Error(), "no such agent") {
		t.Errorf("set for an unknown agent: got %v, want no such agent", err)
	}
	cache := store.NewAgentConfigCache(conn)
	if _, ok, err := cache.AgentConfig(ctx, "ams-1"); err != nil || ok {
		t.Fatalf("cache before any set: got ok=%v err=%v", ok, err)
	}
	for i, doc := range []string{"checks:\n  - {name: a, kind: tcp, target: \"x:1\"}\n", "checks:\n  - {name: b, kind: tcp, target: \"x:2\"}\n"} {
		ac, err := store.SetAgentConfig(ctx, conn, "ams-1", doc)
		if err != nil {
			t.Fatal(err)
		}
		if ac.Version != uint64(i+1) {
			t.Errorf("set %d: got version %d, want %d", i, ac.Version, i+1)
		}
		got, ok, err := store.GetAgentConfig(ctx, conn, "ams-1")
		if err != nil || !ok || got.YAML != doc || got.Version != uint64(i+1) || got.UpdatedAt.IsZero() {
			t.Errorf("get after set %d: got %+v ok=%v err=%v", i, got, ok, err)
		}
	}
	time.Sleep(2100 * time.Millisecond) // past the cache's TTL
	if got, ok, err := cache.AgentConfig(ctx, "ams-1"); err != nil || !ok || got.Version != 2 {
		t.Errorf("cache after its TTL: got %+v ok=%v err=%v, want version 2", got, ok, err)
	}
	if _, err := store.SetAgentConfig(ctx, conn, "ams-1", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := store.GetAgentConfig(ctx, conn, "ams-1"); err != nil || ok {
		t.Errorf("after removal: got ok=%v err=%v, want none", ok, err)
	}
}
