package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestAcknowledgedBeaconsSurviveKill9: the collector acknowledges beacons
// once they are in its journal. Killed with SIGKILL while every one of them
// still waits for its batch (a 1-hour flush interval), and started again,
// it puts every acknowledged beacon into ClickHouse, each once.
func TestAcknowledgedBeaconsSurviveKill9(t *testing.T) {
	bin, _ := binaries(t)
	o, conn := chtest.New(t)
	ctx := context.Background()
	key := lastLine(meridian(t, bin, o.Database, "sites", "add", "shop", "--origin", benchOrigin))
	listen := freeAddr(t)
	spool := filepath.Join(t.TempDir(), "spool")
	serve := func(flush string) *exec.Cmd {
		c := exec.Command(bin, "serve", "--listen", listen, "--flush-interval", flush, "--spool-dir", spool)
		c.Env = append(os.Environ(), "MERIDIAN_CLICKHOUSE="+o.Addr, "MERIDIAN_DATABASE="+o.Database)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		waitHTTP(t, "http://"+listen+"/readyz")
		return c
	}

	col := serve("1h")
	var acked atomic.Int64
	body := strings.Replace(benchBeacon, "SITEKEY", key, 1)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				b := strings.Replace(body, "PV", fmt.Sprintf("00000000-0000-4000-8000-%06d%06d", w, i), 1)
				req, _ := http.NewRequest("POST", "http://"+listen+"/v1/beacon", strings.NewReader(b))
				req.Header.Set("Content-Type", "text/plain")
				req.Header.Set("Origin", benchOrigin)
				req.Header.Set("User-Agent", benchUA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("beacon %d/%d: got %d, want 204", w, i, resp.StatusCode)
					return
				}
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	var n uint64
	conn.QueryRow(ctx, "SELECT count() FROM rum_pageviews").Scan(&n)
	if n != 0 || acked.Load() != 400 {
		t.Fatalf("before the kill: %d acknowledged, %d in ClickHouse; want 400 and 0 (all waiting in the journal)", acked.Load(), n)
	}
	col.Process.Kill()
	col.Wait()

	col = serve("50ms")
	defer func() { col.Process.Kill(); col.Wait() }()
	// The rollup counts inserts (merges of the raw table could fold a
	// duplicate): a beacon inserted twice would show there. Its rows
	// arrive just after the table's, so wait for both and an empty journal.
	var cdn, inserted uint64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn.QueryRow(ctx, "SELECT count() FROM rum_pageviews").Scan(&n)
		if err := conn.QueryRow(ctx, "SELECT countMerge(pageviews) FROM rum_pageviews_1m").Scan(&inserted); err != nil {
			t.Fatal(err)
		}
		segs, _ := filepath.Glob(filepath.Join(spool, "beacons", "seg-*"))
		if n >= 400 && inserted >= 400 && len(segs) == 0 {
			break
		}
	}
	conn.QueryRow(ctx, "SELECT count() FROM rum_cdn FINAL").Scan(&cdn)
	if n != 400 || inserted != 400 || cdn != 400*5 {
		t.Errorf("after kill -9 and restart: %d page views (%d inserts) and %d CDN rows in ClickHouse, want 400 (400) and 2000: every acknowledged beacon, once", n, inserted, cdn)
	}
}
