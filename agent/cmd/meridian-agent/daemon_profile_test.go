package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/config"
)

// TestDaemonProfile runs the whole daemon in-process (schedule, probe,
// spool append and fsync, ship gzip and POST) under the footprint bench's
// load, sped up 12 times so a profile gets enough samples: 40 http checks
// every second and a ship every 1/12 s, the same ships per check as 40
// checks every 12 s with the default 1 s ship interval. Only with
// MERIDIAN_PROFILE=1; profile it with
//
//	MERIDIAN_PROFILE=1 go test -run '^TestDaemonProfile$' -cpuprofile cpu.out ./agent/cmd/meridian-agent/
//
// The targets and the collector run in the same process: their frames
// (net/http.(*conn).serve) are easy to leave out with -ignore.
func TestDaemonProfile(t *testing.T) {
	if os.Getenv("MERIDIAN_PROFILE") == "" {
		t.Skip("a profiling harness: run with MERIDIAN_PROFILE=1 and -cpuprofile")
	}
	dur := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("MERIDIAN_PROFILE_DURATION")); err == nil {
		dur = d
	}
	tg := newTargets(t)
	col, colURL := newCollector(t)
	dir := t.TempDir()
	var checks []string
	for i := range 40 {
		checks = append(checks, fmt.Sprintf("{name: http-%d, kind: http, target: %q, interval: 1s}", i, tg.URL+"/"))
	}
	cfg, err := config.Load(writeConfig(t, dir, "profile", checks...))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Collector, cfg.Token = colURL, testToken
	cfg.Ship.Interval, cfg.Ship.Batch = time.Second/12, 500
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	err = daemon(ctx, cfg, daemonOptions{dataDir: filepath.Join(dir, "data"), stopTimeout: time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	_, n := col.received()
	t.Logf("%d checks run, %d results received in %v", tg.total(), n, dur)
}
