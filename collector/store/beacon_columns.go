package store

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// col is one column of a table with a typed getter: a batch's values go to
// the driver as one slice per column, far cheaper than row by row through
// []any (make bench). values fills the column's buffer, kept between
// inserts by the writer: fresh slices per batch were a third of a beacon's
// allocations (BenchmarkBeaconHandler).
type col[R any] struct {
	name   string
	values func(rows []R, buf *colBuf) any
}

// colBuf is a column's values, kept from one insert to the next; reset
// drops what they point to once the insert is sent, and says how many
// values the buffer holds room for.
type colBuf interface{ reset() int }

// maxKeptRows bounds what a buffer keeps between inserts: a batch of
// beacons that each list many hosts and probes (36 rum_cdn rows each)
// would otherwise hold its columns' memory for good. A batch of page views
// (5,000) fits; rum_cdn's several rows per beacon mostly do not, and are
// built afresh: keeping 32k rows of them held ~18 MB, and took the 2x
// overload's peak RSS from ~225 to ~268 MiB (TestBeaconOverload).
const maxKeptRows = 1 << 13

type flatBuf[V any] struct{ vals []V }

func (b *flatBuf[V]) reset() int { clear(b.vals); return cap(b.vals) }

func typed[R, V any](name string, get func(*R) V) col[R] {
	return col[R]{name: name, values: func(rows []R, buf *colBuf) any {
		b, _ := (*buf).(*flatBuf[V])
		if b == nil {
			b = new(flatBuf[V])
			*buf = b
		}
		b.vals = slices.Grow(b.vals[:0], len(rows))[:len(rows)]
		for i := range rows {
			b.vals[i] = get(&rows[i])
		}
		return b.vals
	}}
}

// nestedBuf is an Array column's values: each row's array cut from one
// backing slice, instead of one slice per row.
type nestedBuf[V any] struct {
	flat []V
	rows [][]V
}

func (b *nestedBuf[V]) reset() int {
	clear(b.flat)
	clear(b.rows)
	return max(cap(b.flat), cap(b.rows))
}

// nested is an Array column: items says how long a row's array is, get
// gives its i-th value.
func nested[R, V any](name string, items func(*R) int, get func(r *R, i int) V) col[R] {
	return col[R]{name: name, values: func(rows []R, buf *colBuf) any {
		b, _ := (*buf).(*nestedBuf[V])
		if b == nil {
			b = new(nestedBuf[V])
			*buf = b
		}
		n := 0
		for i := range rows {
			n += items(&rows[i])
		}
		// Never nil, so that no row's array is a nil slice.
		b.flat = slices.Grow(b.flat[:0], max(n, 1))[:n]
		b.rows = slices.Grow(b.rows[:0], len(rows))[:len(rows)]
		k := 0
		for i := range rows {
			m := items(&rows[i])
			for j := range m {
				b.flat[k+j] = get(&rows[i], j)
			}
			b.rows[i] = b.flat[k : k+m : k+m]
			k += m
		}
		return b.rows
	}}
}

// in reads a value from an optional part of a row: V's zero (nil for
// Nullable columns) when the part is absent.
func in[R, P, V any](part func(*R) *P, get func(*P) V) func(*R) V {
	return func(r *R) V {
		if p := part(r); p != nil {
			return get(p)
		}
		var zero V
		return zero
	}
}

func u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func second(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// sendColumns inserts rows with one INSERT, column by column, from bufs
// (one per column), in blocks of insertBlockRows: the driver copies a
// block's values into its own columns and encodes them, so a block's size,
// not the insert's, bounds what the three copies hold. ClickHouse gathers
// the blocks of an INSERT into one part (min_insert_block_size_rows), so
// its cost stays that of one insert.
func sendColumns[R any](ctx context.Context, conn driver.Conn, query string, cols []col[R], rows []R, bufs []colBuf) error {
	batch, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	defer func() {
		batch.Abort()
		for i, b := range bufs {
			if b != nil && b.reset() > maxKeptRows {
				bufs[i] = nil
			}
		}
	}()
	for lo := 0; lo < len(rows); lo += insertBlockRows {
		block := rows[lo:min(lo+insertBlockRows, len(rows))]
		for i, c := range cols {
			if err := batch.Column(i).Append(c.values(block, &bufs[i])); err != nil {
				return fmt.Errorf("column %s: %w", c.name, err)
			}
		}
		if lo+len(block) < len(rows) {
			if err := batch.Flush(); err != nil {
				return err
			}
		}
	}
	return batch.Send()
}

// insertBlockRows is the rows of one block of an insert.
const insertBlockRows = 1000

// beaconBufs is what a BeaconWriter keeps between inserts: the columns'
// buffers, the rum_cdn rows, and the hosts of probe URLs (a site's probes
// use a handful of URLs; parsing each was a tenth of the columns' cost).
type beaconBufs struct {
	mu       sync.Mutex // inserts come from one goroutine; this keeps it so
	pageview []colBuf
	cdn      []colBuf
	cdnRows  []cdnRecord
	hosts    map[string]string
}

const maxProbeHosts = 1024

// probeHost is the host of a probe URL ("" when it does not parse).
func (b *beaconBufs) probeHost(u string) string {
	if h, ok := b.hosts[u]; ok {
		return h
	}
	host := ""
	if p, err := url.Parse(u); err == nil {
		host = p.Host
	}
	if b.hosts == nil || len(b.hosts) >= maxProbeHosts {
		b.hosts = make(map[string]string)
	}
	b.hosts[u] = host
	return host
}
