package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// BenchmarkBeaconHandler is one acknowledged beacon in process: request →
// decode → validate → enrich → journal append with group-commit fsync →
// 204, many requests in flight as under load, with the journal's inserter
// running beside it. B/op and allocs/op count every goroutine (the
// journal's and the inserter's too); cpu-ns/op is the process's CPU per
// beacon, which stays meaningful when ns/op waits on fsync.
//
// "journal" sends batches to a driver that only takes the columns (it
// needs no ClickHouse, so `make bench` always has it); "clickhouse" inserts
// into the test ClickHouse (MERIDIAN_TEST_CLICKHOUSE), driver encoding
// included.
func BenchmarkBeaconHandler(b *testing.B) {
	b.Run("journal", func(b *testing.B) {
		site := store.Site{Key: "mrs_bench", Origins: []string{shopOrigin}}
		benchBeaconHandler(b, fakeSites{site: site}, nullConn{}, site.Key)
	})
	b.Run("clickhouse", func(b *testing.B) {
		if os.Getenv(chtest.EnvAddr) == "" {
			b.Skip("needs ClickHouse: set " + chtest.EnvAddr + " (deploy/clickhouse/local.sh start DIR prints it)")
		}
		_, conn := chtest.New(b)
		site, err := store.NewSite("bench", []string{shopOrigin}, 1, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		key, err := store.AddSite(context.Background(), conn, &site)
		if err != nil {
			b.Fatal(err)
		}
		benchBeaconHandler(b, store.NewSiteCache(conn), conn, key)
	})
}

func benchBeaconHandler(b *testing.B, sites server.Sites, conn driver.Conn, key string) {
	var body bytes.Buffer
	if err := json.Compact(&body, docBeacon(b, key)); err != nil {
		b.Fatal(err)
	}
	bw := benchWriter(b, conn)
	h := server.New(server.Config{Sites: sites, Beacons: bw, Enricher: benchEnricher(b)})
	var failed atomic.Int32
	b.SetBytes(int64(body.Len()))
	b.SetParallelism(32) // 64 requests in flight on two cores: group commit shares the fsyncs
	b.ReportAllocs()
	drained := metrics.GetOrCreateCounter(`meridian_store_spool_drained_total{what="beacons"}`)
	cpu0, drained0 := cpuTime(), drained.Get()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("POST", "/v1/beacon", nil)
		r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		r.Header.Set("Origin", shopOrigin)
		r.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
		r.RemoteAddr = "192.0.2.1:50000"
		r.ContentLength = int64(body.Len())
		w := &nullResponse{h: http.Header{}}
		var rd bytes.Reader
		rc := io.NopCloser(&rd)
		for pb.Next() {
			rd.Reset(body.Bytes())
			r.Body = rc
			clear(w.h)
			w.code = 0
			h.ServeHTTP(w, r)
			if w.code != http.StatusNoContent {
				failed.Add(1)
			}
		}
	})
	bw.Close() // the inserts of the last beacons are theirs too
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	// Beacons inserted from the journal file, not from memory: the
	// memory queue overflowed while ClickHouse was slow.
	b.ReportMetric(100*float64(drained.Get()-drained0)/float64(b.N), "%readback")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d beacons not acknowledged", n)
	}
}

// benchWriter journals (the caller closes it) on tmpfs when there is one: the fsync's latency is
// the disk's, not the collector's, and a shared machine's disk is noisy.
func benchWriter(b *testing.B, conn driver.Conn) *store.BeaconWriter {
	dir := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "meridian-bench-"); err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	// serve's beacon settings (collector/cmd/meridian/serve.go).
	w, err := store.NewBeaconWriter(conn, store.WriterOptions{SpoolDir: dir, MaxRows: 5000, MemBytes: 12 << 20, MaxDelay: 250 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	return w
}

func benchEnricher(b *testing.B) *enrich.Enricher {
	e, err := enrich.Open(enrich.Options{
		GeoIPPath: enrichtest.CityDB(b, map[string]enrichtest.City{"192.0.2.0/24": {Country: "NL", Region: "NH", City: "Amsterdam"}}),
		ASNPath:   enrichtest.ASNDB(b, map[string]enrichtest.ASN{"192.0.2.0/24": {Number: 64512, Org: "Example Networks"}}),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// cpuTime is the process's user and system CPU so far, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// nullResponse is a ResponseWriter the benchmark reuses: what a request
// costs is the handler's, not a recorder's.
type nullResponse struct {
	h    http.Header
	code int
}

func (w *nullResponse) Header() http.Header         { return w.h }
func (w *nullResponse) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullResponse) WriteHeader(code int)        { w.code = code }

// SetReadDeadline is there as on net/http's writer: the handler sets one.
func (w *nullResponse) SetReadDeadline(time.Time) error { return nil }

// nullConn takes batches and drops them once their columns are built.
type nullConn struct{ driver.Conn }

func (nullConn) PrepareBatch(context.Context, string, ...driver.PrepareBatchOption) (driver.Batch, error) {
	return nullBatch{}, nil
}

type nullBatch struct{ driver.Batch }

func (nullBatch) Column(int) driver.BatchColumn { return nullColumn{} }
func (nullBatch) Send() error                   { return nil }
func (nullBatch) Flush() error                  { return nil }
func (nullBatch) Abort() error                  { return nil }

type nullColumn struct{}

func (nullColumn) Append(any) error    { return nil }
func (nullColumn) AppendRow(any) error { return nil }
