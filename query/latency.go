package query

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// LatencyOptions select and group the results of the latency query.
type LatencyOptions struct {
	Since time.Duration // look back this far from Until
	Until time.Time     // default now
	By    []string      // see `meridian query latency --help`; default region, target
	Kind  string        // only results of this kind; empty for all
	// Rollup reads the per-minute rollup (latency_1m.sql) instead of the
	// raw results: for long windows; whole minutes, By limited to region,
	// target, check and kind, and a replayed result counts again.
	Rollup bool
}

func (o LatencyOptions) options() Options {
	r := Options{Since: o.Since, To: o.Until, By: o.By, Rollup: o.Rollup, Raw: !o.Rollup}
	if o.Kind != "" {
		r.Filters = map[string]string{"kind": o.Kind}
	}
	return r
}

// Latency runs the latency query, raw unless o.Rollup (as Run("latency")
// with Raw or Rollup set).
func Latency(ctx context.Context, conn driver.Conn, o LatencyOptions) (*Table, error) {
	return Run(ctx, conn, "latency", o.options())
}
