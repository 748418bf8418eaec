package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

func TestHeartbeats(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	w := store.NewHeartbeatWriter(conn, 20*time.Millisecond, t.Logf)
	now := time.Now().Truncate(time.Second)
	w.Add(store.Heartbeat{Agent: "ams-1", TS: now.Add(-time.Minute), Version: "v1", UptimeS: 10, Checks: 1})
	w.Add(store.Heartbeat{Agent: "ams-1", TS: now, Version: "v2", UptimeS: 70, SpoolResults: 5, SpoolBytes: 1234,
		LastError: "cannot ship", ConfigVersion: 42, Checks: 3})
	w.Add(store.Heartbeat{Agent: "gru-1", TS: now, Version: "v1"})
	w.Close()
	if w.Add(store.Heartbeat{Agent: "late"}) {
		t.Error("Add after Close: got true, want dropped")
	}
	hbs, err := store.LatestHeartbeats(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	got := hbs["ams-1"]
	want := store.Heartbeat{Agent: "ams-1", TS: now, Version: "v2", UptimeS: 70, SpoolResults: 5, SpoolBytes: 1234,
		LastError: "cannot ship", ConfigVersion: 42, Checks: 3}
	if len(hbs) != 2 || !got.TS.Equal(want.TS) {
		t.Fatalf("got %d agents, ams-1 %+v; want 2 and the newest heartbeat", len(hbs), got)
	}
	got.TS = want.TS
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
