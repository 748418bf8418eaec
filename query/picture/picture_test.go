package picture

import (
	"bytes"
	"encoding/xml"
	"flag"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/paulmach/orb"
)

var update = flag.Bool("update", false, "rewrite testdata/example-map.svg")

func sampleHeatmap() HeatmapData {
	nan := math.NaN()
	return HeatmapData{
		Title: "latency-map p75",
		Rows:  []string{"BR", "DE", "IN", "US"},
		Cols:  []string{"akamai", "cloudflare", "fastly"},
		Value: [][]float64{{120, 80, nan}, {25, 18, 30}, {210, 95, 160}, {40, 22, 35}},
		Count: [][]uint64{{900, 1200, 0}, {5000, 7000, 3000}, {400, 800, 300}, {9000, 12000, 6000}},
	}
}

func sampleMap(br float64) MapData {
	return MapData{
		Title: "latency-map p75",
		Value: map[string]float64{"BR": br, "US": 40, "DE": 25, "IN": 210, "AU": 90, "SG": 30, "ZA": 180},
		Count: map[string]uint64{"BR": 900, "US": 9000, "DE": 5000, "IN": 400, "AU": 700, "SG": 300, "ZA": 100},
	}
}

func TestHeatmapPNG(t *testing.T) {
	h := sampleHeatmap()
	img := mustPNG(t, func(b *bytes.Buffer) error { return Heatmap(b, "png", h) })
	w, ht := HeatmapSize(h)
	if got := img.Bounds().Size(); got != (image.Point{w, ht}) {
		t.Fatalf("got size %v, want %dx%d", got, w, ht)
	}
	if n := distinctColours(img); n < 8 {
		t.Errorf("got %d distinct colours, want at least 8", n)
	}
}

func TestHeatmapSVG(t *testing.T) {
	h := sampleHeatmap()
	var b bytes.Buffer
	if err := Heatmap(&b, "svg", h); err != nil {
		t.Fatal(err)
	}
	w, ht := HeatmapSize(h)
	s := mustSVG(t, b.Bytes(), w, ht)
	if s.fills < 8 {
		t.Errorf("got %d distinct fills, want at least 8", s.fills)
	}
	for _, want := range []string{"120 ms", "n=7000", "no data", "cloudflare", "p75 (ms)"} {
		if !strings.Contains(s.text, want) {
			t.Errorf("svg text lacks %q", want)
		}
	}
}

func TestHeatmapErrors(t *testing.T) {
	for name, h := range map[string]HeatmapData{
		"empty":      {},
		"short row":  {Rows: []string{"BR"}, Cols: []string{"a", "b"}, Value: [][]float64{{1}}},
		"rows":       {Rows: []string{"BR", "DE"}, Cols: []string{"a"}, Value: [][]float64{{1}}},
		"counts":     {Rows: []string{"BR"}, Cols: []string{"a"}, Value: [][]float64{{1}}, Count: [][]uint64{{1, 2}}},
		"count rows": {Rows: []string{"BR"}, Cols: []string{"a"}, Value: [][]float64{{1}}, Count: [][]uint64{}},
	} {
		if err := Heatmap(&bytes.Buffer{}, "png", h); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
	if err := Heatmap(&bytes.Buffer{}, "gif", sampleHeatmap()); err == nil || !strings.Contains(err.Error(), "use svg or png") {
		t.Errorf("got %v, want an error naming svg and png", err)
	}
}

func TestChoroplethPNG(t *testing.T) {
	slow := mustPNG(t, func(b *bytes.Buffer) error { return Choropleth(b, "png", sampleMap(500)) })
	fast := mustPNG(t, func(b *bytes.Buffer) error { return Choropleth(b, "png", sampleMap(50)) })
	if got := slow.Bounds().Size(); got != (image.Point{MapWidth, MapHeight}) {
		t.Fatalf("got size %v, want %dx%d", got, MapWidth, MapHeight)
	}
	if n := distinctColours(slow); n < 8 {
		t.Errorf("got %d distinct colours, want at least 8", n)
	}
	x, y := mapPixel(-52, -10) // Brazil's centre
	if a, b := slow.At(x, y), fast.At(x, y); sameColour(a, b) {
		t.Errorf("Brazil at (%d,%d) is %v at both 50 and 500 ms", x, y, a)
	}
	if got, want := fast.At(x, y), NewScale(25, 210).Color(50); !sameColour(got, want) {
		t.Errorf("Brazil at 50 ms: got %v, want %v", got, want)
	}
	x, y = mapPixel(-64, -34) // Argentina: no data
	if got := slow.At(x, y); !sameColour(got, NoData) {
		t.Errorf("Argentina (no data) at (%d,%d): got %v, want %v", x, y, got, NoData)
	}
}

func TestChoroplethSVG(t *testing.T) {
	var b bytes.Buffer
	if err := Choropleth(&b, "svg", sampleMap(120)); err != nil {
		t.Fatal(err)
	}
	s := mustSVG(t, b.Bytes(), MapWidth, MapHeight)
	if s.fills < 6 {
		t.Errorf("got %d distinct fills, want at least 6", s.fills)
	}
	if b.Len() > 300<<10 {
		t.Errorf("svg is %d bytes, want under 300 KiB", b.Len())
	}
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", "example-map.svg"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCountries(t *testing.T) {
	cs, err := Countries()
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, c := range cs {
		if c.Code != "" {
			codes[c.Code] = true
		}
		if len(c.Geom) == 0 || len(c.Geom[0]) == 0 || len(c.Geom[0][0]) < 4 {
			t.Errorf("%s (%q) has an empty polygon", c.Name, c.Code)
		}
	}
	if len(codes) < 170 {
		t.Errorf("got %d countries with a code, want at least 170", len(codes))
	}
	for _, want := range []string{"BR", "US", "DE", "IN", "AU", "SG", "FR", "NO"} {
		if !codes[want] {
			t.Errorf("no shape for %s", want)
		}
	}
}

func TestScale(t *testing.T) {
	s := NewScale(100, 200)
	yellow, purple := viridis[len(viridis)-1], viridis[0]
	for _, tc := range []struct {
		v    float64
		want color.RGBA
	}{
		{100, yellow},
		{200, purple},
		{50, yellow},  // clamped
		{900, purple}, // clamped
		{150, viridis[5]},
		{190, viridis[1]},
		{195, color.RGBA{0x46, 0x13, 0x65, 0xff}}, // halfway between the two darkest stops
		{math.NaN(), NoData},
	} {
		if got := s.Color(tc.v); got != tc.want {
			t.Errorf("Color(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
	// A single value still gets a range, and sits in its middle.
	if s := scaleFor([]float64{math.NaN(), 40}); s.Min() >= 40 || s.Max() <= 40 {
		t.Errorf("scaleFor(40) = [%v, %v], want a range around 40", s.Min(), s.Max())
	}
	if s := scaleFor(nil); s.Min() >= s.Max() {
		t.Errorf("scaleFor(nil) = [%v, %v], want a non-empty range", s.Min(), s.Max())
	}
}

func mustPNG(t *testing.T, draw func(*bytes.Buffer) error) image.Image {
	t.Helper()
	var b bytes.Buffer
	if err := draw(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("cannot decode png: %v", err)
	}
	return img
}

func distinctColours(img image.Image) int {
	seen := map[color.RGBA]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			seen[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)] = true
		}
	}
	return len(seen)
}

func sameColour(a, b color.Color) bool {
	return color.RGBAModel.Convert(a) == color.RGBAModel.Convert(b)
}

type svgSummary struct {
	fills int
	text  string
}

// mustSVG parses an SVG document, checks its size and collects its fills and text.
func mustSVG(t *testing.T, b []byte, w, h int) svgSummary {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	fills := map[string]bool{}
	var text strings.Builder
	root := true
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("cannot parse svg: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root {
				root = false
				if tok.Name.Local != "svg" {
					t.Fatalf("root element is %q, want svg", tok.Name.Local)
				}
				if got := attr(tok, "width"); got != strconv.Itoa(w)+"pt" {
					t.Errorf("got width %q, want %dpt", got, w)
				}
				if got := attr(tok, "height"); got != strconv.Itoa(h)+"pt" {
					t.Errorf("got height %q, want %dpt", got, h)
				}
			}
			if f := attr(tok, "fill"); f != "" {
				fills[f] = true
			}
			for _, part := range strings.Split(attr(tok, "style"), ";") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(part), "fill:"); ok {
					fills[v] = true
				}
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte(' ')
		}
	}
	return svgSummary{fills: len(fills), text: text.String()}
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestPolygonsAntimeridian(t *testing.T) {
	// A ring like Fiji's that steps from 179°E to 179°W.
	ring := orb.Ring{{179, -16}, {-179, -16}, {-179, -17}, {179, -17}, {179, -16}}
	pgs, err := polygons(orb.Polygon{ring})
	if err != nil {
		t.Fatal(err)
	}
	if len(pgs) != 3 {
		t.Fatalf("got %d copies, want 3 (shifted by -360, 0, +360)", len(pgs))
	}
	for _, pg := range pgs {
		xs := pg.XYs[0]
		for k := 1; k < len(xs); k++ {
			if d := math.Abs(xs[k].X - xs[k-1].X); d > 180 {
				t.Errorf("ring jumps %v° between points %d and %d", d, k-1, k)
			}
		}
	}
	one, err := polygons(orb.Polygon{{{10, 10}, {11, 10}, {11, 11}, {10, 10}}})
	if err != nil || len(one) != 1 {
		t.Errorf("ordinary ring: got %d copies, %v; want 1", len(one), err)
	}
}
