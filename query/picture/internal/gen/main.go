// Command gen converts Natural Earth country shapes, as shipped by the npm package world-atlas
// (TopoJSON keyed by ISO 3166 numeric codes), into the compact file keyed by ISO 3166 alpha-2
// that package picture embeds, adding from the 1:50m file the small countries (Singapore, Hong
// Kong, Bahrain, Malta, …) that the 1:110m file leaves out: gzip of records, each the two-letter code ("" for none), the
// English name and the geometry as WKB, the strings and the WKB each preceded by a uvarint length. It runs once per data update; see ../../README.md.
//
//	go run ./query/picture/internal/gen \
//	    -atlas /tmp/ne/world-atlas/package/countries-110m.json \
//	    -small /tmp/ne/world-atlas/package/countries-50m.json \
//	    -codes /tmp/ne/i18n-iso-countries/package/codes.json \
//	    -out query/picture/countries-110m.wkb.gz
package main

import (
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/encoding/wkb"
)

// extraCodes names features that world-atlas ships without a numeric id. Kosovo's XK is a
// user-assigned code in wide use (CLDR, browsers); the others have no code and stay grey.
var extraCodes = map[string]string{"Kosovo": "XK"}

type topology struct {
	Transform struct {
		Scale     [2]float64 `json:"scale"`
		Translate [2]float64 `json:"translate"`
	} `json:"transform"`
	Arcs    [][][2]float64 `json:"arcs"`
	Objects map[string]struct {
		Geometries []struct {
			Type       string            `json:"type"`
			ID         string            `json:"id"`
			Arcs       json.RawMessage   `json:"arcs"`
			Properties map[string]string `json:"properties"`
		} `json:"geometries"`
	} `json:"objects"`
}

func main() {
	atlas := flag.String("atlas", "", "world-atlas countries-110m.json")
	small := flag.String("small", "", "world-atlas countries-50m.json, for the countries 110m lacks")
	codes := flag.String("codes", "", "i18n-iso-countries codes.json")
	out := flag.String("out", "countries-110m.wkb.gz", "output file")
	flag.Parse()
	if err := run(*atlas, *small, *codes, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(atlasPath, smallPath, codesPath, out string) error {
	var topo, small topology
	if err := readJSON(atlasPath, &topo); err != nil {
		return err
	}
	if err := readJSON(smallPath, &small); err != nil {
		return err
	}
	var rows [][]string
	if err := readJSON(codesPath, &rows); err != nil {
		return err
	}
	alpha2 := map[string]string{} // ISO numeric -> alpha-2
	for _, r := range rows {
		alpha2[r[2]] = r[0]
	}
	seen := map[string]bool{}
	all, err := countries(&topo, alpha2, seen, true)
	if err != nil {
		return err
	}
	more, err := countries(&small, alpha2, seen, false)
	if err != nil {
		return err
	}
	all = append(all, more...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].code < all[j].code })
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	for _, c := range all {
		b, err := wkb.Marshal(c.geom, binary.LittleEndian)
		if err != nil {
			return fmt.Errorf("cannot encode %q: %w", c.name, err)
		}
		for _, field := range [][]byte{[]byte(c.code), []byte(c.name), b} {
			zw.Write(binary.AppendUvarint(nil, uint64(len(field))))
			zw.Write(field)
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

type country struct {
	code, name string
	geom       orb.Geometry
}

// countries decodes t's countries whose numeric id is not yet in seen, and adds them to seen;
// features without an id are kept only if keepNoID.
func countries(t *topology, alpha2 map[string]string, seen map[string]bool, keepNoID bool) ([]country, error) {
	arcs := decodeArcs(t)
	var out []country
	for _, g := range t.Objects["countries"].Geometries {
		if seen[g.ID] || g.ID == "" && !keepNoID {
			continue
		}
		geom, err := geometry(g.Type, g.Arcs, arcs)
		if err != nil {
			return nil, fmt.Errorf("cannot decode %q: %w", g.Properties["name"], err)
		}
		code := alpha2[g.ID]
		if c, ok := extraCodes[g.Properties["name"]]; ok && code == "" {
			code = c
		}
		if g.ID != "" {
			seen[g.ID] = true
		}
		out = append(out, country{code, g.Properties["name"], geom})
	}
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read %q: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cannot parse %q: %w", path, err)
	}
	return nil
}

// decodeArcs undoes TopoJSON's quantisation and delta encoding, rounding to 0.01° (about 1 km,
// far below the 110m data's resolution) to keep the file small.
func decodeArcs(t *topology) [][]orb.Point {
	out := make([][]orb.Point, len(t.Arcs))
	for i, arc := range t.Arcs {
		var x, y float64
		for _, d := range arc {
			x += d[0]
			y += d[1]
			out[i] = append(out[i], orb.Point{
				round(x*t.Transform.Scale[0] + t.Transform.Translate[0]),
				round(y*t.Transform.Scale[1] + t.Transform.Translate[1]),
			})
		}
	}
	return out
}

func round(v float64) float64 { return math.Round(v*100) / 100 }

func geometry(typ string, raw json.RawMessage, arcs [][]orb.Point) (orb.Geometry, error) {
	switch typ {
	case "Polygon":
		var rings [][]int
		if err := json.Unmarshal(raw, &rings); err != nil {
			return nil, err
		}
		return polygon(rings, arcs), nil
	case "MultiPolygon":
		var polys [][][]int
		if err := json.Unmarshal(raw, &polys); err != nil {
			return nil, err
		}
		var mp orb.MultiPolygon
		for _, rings := range polys {
			mp = append(mp, polygon(rings, arcs))
		}
		return mp, nil
	}
	return nil, fmt.Errorf("unsupported geometry type %q", typ)
}

func polygon(rings [][]int, arcs [][]orb.Point) orb.Polygon {
	var p orb.Polygon
	for _, refs := range rings {
		var ring orb.Ring
		for k, ref := range refs {
			pts := arcPoints(ref, arcs)
			if k > 0 {
				pts = pts[1:] // shared with the previous arc's last point
			}
			ring = append(ring, pts...)
		}
		p = append(p, ring)
	}
	return p
}

// arcPoints resolves a TopoJSON arc reference; ^i (that is -i-1) is arc i reversed.
func arcPoints(ref int, arcs [][]orb.Point) []orb.Point {
	if ref >= 0 {
		return arcs[ref]
	}
	src := arcs[^ref]
	rev := make([]orb.Point, len(src))
	for i, p := range src {
		rev[len(src)-1-i] = p
	}
	return rev
}
