package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/query"
	"github.com/meridian-net/meridian/query/picture"
)

// valueColumns are the latency columns a picture colours by, best first.
var valueColumns = []string{"p75_ms", "lcp_p75_ms", "ttfb_p75_ms", "p50_ms", "total_p50_ms", "p95_ms"}

// drawPictures writes the --svg/--png pictures of a named query: a heatmap
// of its first two groupings coloured by latency, and for latency-map a
// world map of p75 per country (FILE), the heatmap of country × member
// beside it (FILE with -heatmap before the extension).
func drawPictures(ctx context.Context, conn driver.Conn, name string, o query.Options, t *query.Table, files map[string]string) ([]string, error) {
	var wrote []string
	for format, file := range files {
		if file == "" {
			continue
		}
		if name != "latency-map" {
			h, err := heatmapOf(name, t)
			if err != nil {
				return wrote, err
			}
			if err := writePicture(file, func(f *os.File) error { return picture.Heatmap(f, format, h) }); err != nil {
				return wrote, err
			}
			wrote = append(wrote, file)
			continue
		}
		byCountry, err := rerun(ctx, conn, name, o, "country")
		if err != nil {
			return wrote, err
		}
		m := mapOf(byCountry)
		if err := writePicture(file, func(f *os.File) error { return picture.Choropleth(f, format, m) }); err != nil {
			return wrote, err
		}
		grid, err := rerun(ctx, conn, name, o, "country", "member")
		if err != nil {
			return wrote, err
		}
		h, err := heatmapOf(name, grid)
		if err != nil {
			return wrote, err
		}
		ext := filepath.Ext(file)
		heat := strings.TrimSuffix(file, ext) + "-heatmap" + ext
		if err := writePicture(heat, func(f *os.File) error { return picture.Heatmap(f, format, h) }); err != nil {
			return wrote, err
		}
		wrote = append(wrote, file, heat)
	}
	return wrote, nil
}

// rerun runs the query again grouped by the given dimensions (sources
// together), for a picture.
func rerun(ctx context.Context, conn driver.Conn, name string, o query.Options, by ...string) (*query.Table, error) {
	o.By, o.Bucket = by, ""
	return query.Run(ctx, conn, name, o)
}

func writePicture(file string, draw func(*os.File) error) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("cannot write picture: %w", err)
	}
	if err := draw(f); err != nil {
		f.Close()
		return fmt.Errorf("cannot draw %s: %w", file, err)
	}
	return f.Close()
}

// heatmapOf lays the table's first two columns out as rows × columns,
// each cell its latency and sample count.
func heatmapOf(name string, t *query.Table) (picture.HeatmapData, error) {
	v, n := column(t, valueColumns...), column(t, "samples", "n", "pageviews")
	if len(t.Columns) < 3 || v < 2 {
		return picture.HeatmapData{}, fmt.Errorf("cannot draw query %s: a picture needs two groupings (--by A,B) and a latency column (%s)", name, strings.Join(valueColumns, ", "))
	}
	var rows, cols []string
	for _, r := range t.Rows {
		rows, cols = appendNew(rows, fmt.Sprint(r[0])), appendNew(cols, fmt.Sprint(r[1]))
	}
	h := picture.HeatmapData{Title: fmt.Sprintf("%s: %s by %s × %s", name, t.Columns[v], t.Columns[0], t.Columns[1]), Rows: rows, Cols: cols}
	h.Value, h.Count = make([][]float64, len(rows)), make([][]uint64, len(rows))
	for i := range rows {
		h.Value[i], h.Count[i] = slices.Repeat([]float64{math.NaN()}, len(cols)), make([]uint64, len(cols))
	}
	for _, r := range t.Rows {
		i, j := slices.Index(rows, fmt.Sprint(r[0])), slices.Index(cols, fmt.Sprint(r[1]))
		if x, ok := r[v].(float64); ok {
			h.Value[i][j] = x
		}
		if n >= 0 {
			h.Count[i][j] = toUint(r[n])
		}
	}
	return h, nil
}

// mapOf is a latency-map table grouped by country as a world map.
func mapOf(t *query.Table) picture.MapData {
	m := picture.MapData{Title: "p75 latency by country (RUM and agents)", Value: map[string]float64{}, Count: map[string]uint64{}}
	c, v, n := column(t, "country"), column(t, "p75_ms"), column(t, "samples")
	for _, r := range t.Rows {
		cc, _ := r[c].(string)
		if x, ok := r[v].(float64); ok && len(cc) == 2 {
			m.Value[cc], m.Count[cc] = x, toUint(r[n])
		}
	}
	return m
}

func column(t *query.Table, names ...string) int {
	for _, name := range names {
		if i := slices.Index(t.Columns, name); i >= 0 {
			return i
		}
	}
	return -1
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func toUint(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case int64:
		return uint64(max(x, 0))
	case float64:
		return uint64(max(x, 0))
	}
	return 0
}
