package query_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

// seed stores, two minutes ago, for regions eu and us, 100 successes of
// 1..100 ms (eu) and 101..200 ms (us) plus 10 failures each; then extra
// (eu), one success three hours ago (outside a 1h window), and a replay of
// the first 20 rows (10 eu, 10 us). It returns a connection to the database.
func seed(t *testing.T, extra ...*result.Result) driver.Conn {
	t.Helper()
	_, conn := seedDB(t, extra...)
	return conn
}

// seedDB is seed, also returning the database's name.
func seedDB(t *testing.T, extra ...*result.Result) (string, driver.Conn) {
	t.Helper()
	o, conn := chtest.New(t)
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	var rows []store.Row
	add := func(region string, r *result.Result) {
		rows = append(rows, store.Row{Result: *r, Region: region, ReceivedAt: now})
	}
	for i := 1; i <= 110; i++ {
		for _, region := range []string{"eu", "us"} {
			r := result.New("a-"+region, "home", result.KindHTTP, "https://example.com/", now.Add(-2*time.Minute))
			if i <= 100 {
				ms := float64(i)
				if region == "us" {
					ms += 100
				}
				r.OK, r.TotalMs = true, &ms
			} else {
				r.Fail(result.ErrConnectRefused, nil)
			}
			add(region, r)
		}
	}
	for _, r := range extra {
		add("eu", r)
	}
	old := result.New("a-eu", "home", result.KindHTTP, "https://example.com/", now.Add(-3*time.Hour))
	ms := 9999.0
	old.OK, old.TotalMs = true, &ms
	add("eu", old)
	if err := w.Write(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	replay := append([]store.Row(nil), rows[:20]...)
	for i := range replay {
		replay[i].Replay = true // as the collector marks what it inserts again
	}
	if err := w.Write(context.Background(), replay); err != nil {
		t.Fatal(err)
	}
	return o.Database, conn
}
