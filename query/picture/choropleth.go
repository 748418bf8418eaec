package picture

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"sort"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/simplify"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// MapData is a latency per country.
type MapData struct {
	Title string
	Value map[string]float64 // ISO 3166 alpha-2 → latency, typically p75
	Count map[string]uint64  // ISO 3166 alpha-2 → samples; may be nil
	Unit  string             // "ms" when empty
}

// The map is equirectangular over 180°W–180°E, 58°S–84°N (Antarctica left out: no users there),
// in a fixed MapWidth × MapHeight picture with the title above and the legend below.
const (
	MapWidth  = 1200
	MapHeight = 600

	mapLatMin, mapLatMax = -58.0, 84.0
	mapMargin            = 20.0
	mapTitleH            = 40.0
	mapLegendH           = 80.0
)

// mapRect is the map's area in points, origin bottom left.
func mapRect() vg.Rectangle {
	w := MapWidth - 2*mapMargin
	h := w * (mapLatMax - mapLatMin) / 360
	y0 := mapLegendH + (MapHeight-mapTitleH-mapLegendH-h)/2
	return vg.Rectangle{Min: vg.Point{X: mapMargin, Y: vg.Length(y0)}, Max: vg.Point{X: vg.Length(mapMargin + w), Y: vg.Length(y0 + h)}}
}

// mapPixel returns where lon, lat lands in the picture, in pixels from the top left.
func mapPixel(lon, lat float64) (x, y int) {
	r := mapRect()
	px := float64(r.Min.X) + (lon+180)/360*float64(r.Max.X-r.Min.X)
	py := float64(r.Min.Y) + (lat-mapLatMin)/(mapLatMax-mapLatMin)*float64(r.Max.Y-r.Min.Y)
	return int(px), int(MapHeight - py)
}

// simplifyDeg is the Douglas-Peucker tolerance: about half a pixel at MapWidth, which keeps the
// SVG small without a visible change.
const simplifyDeg = 0.15

// smallCountry is the bounding-box area, in square degrees, below which a country with data is
// also marked with a dot so that Singapore or Bahrain can be seen.
const smallCountry = 2.0

// Choropleth draws m as format ("svg" or "png") to w: a world map with countries coloured by
// value on the Scale (fast yellow, slow purple, no data light grey) and a colour bar below.
func Choropleth(w io.Writer, format string, m MapData) error {
	shapes, err := Countries()
	if err != nil {
		return err
	}
	c, err := newCanvas(format, MapWidth, MapHeight)
	if err != nil {
		return err
	}
	vs := make([]float64, 0, len(m.Value))
	for _, v := range m.Value {
		vs = append(vs, v)
	}
	sc := scaleFor(vs)
	p, err := m.plot(shapes, sc)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	r := mapRect()
	p.Draw(draw.Crop(dc, r.Min.X, r.Max.X-MapWidth, r.Min.Y, r.Max.Y-MapHeight))
	dc.FillText(textStyle(16, color.Black), vg.Point{X: MapWidth / 2, Y: MapHeight - mapTitleH/2}, m.title())
	m.drawLegend(dc, sc)
	return write(w, c, format)
}

func (m MapData) title() string {
	if m.Count == nil {
		return m.Title
	}
	var n uint64
	for _, c := range m.Count {
		n += c
	}
	return fmt.Sprintf("%s (%d countries, %d samples)", m.Title, len(m.Value), n)
}

func (m MapData) plot(shapes []Country, sc *Scale) (*plot.Plot, error) {
	p := plot.New()
	p.HideAxes()
	p.BackgroundColor = color.RGBA{R: 0xf4, G: 0xf8, B: 0xfb, A: 0xff} // sea
	var dots []Country
	for _, s := range shapes {
		if s.Code == "AQ" {
			continue
		}
		v, ok := m.Value[s.Code]
		if !ok {
			v = math.NaN()
		}
		for _, poly := range s.Geom {
			pgs, err := polygons(poly)
			if err != nil {
				return nil, fmt.Errorf("cannot draw %s: %w", s.Name, err)
			}
			for _, pg := range pgs {
				pg.Color = sc.Color(v)
				pg.LineStyle.Color = color.White
				pg.LineStyle.Width = 0.5
				p.Add(pg)
			}
		}
		if b := s.Geom.Bound(); ok && (b.Right()-b.Left())*(b.Top()-b.Bottom()) < smallCountry {
			dots = append(dots, s)
		}
	}
	// Dots go on top, largest value last so the slowest stand out.
	sort.Slice(dots, func(i, j int) bool { return m.Value[dots[i].Code] < m.Value[dots[j].Code] })
	for _, s := range dots {
		d, err := dot(s.Geom.Bound().Center(), sc.Color(m.Value[s.Code]))
		if err != nil {
			return nil, fmt.Errorf("cannot mark %s: %w", s.Name, err)
		}
		p.Add(d)
	}
	p.X.Min, p.X.Max = -180, 180
	p.Y.Min, p.Y.Max = mapLatMin, mapLatMax
	p.X.Padding, p.Y.Padding = 0, 0
	return p, nil
}

// polygons converts poly to plotter polygons, simplified to about half a pixel. Natural Earth
// rings that cross the antimeridian (Russia, Fiji) are made continuous and drawn twice, once
// shifted by 360°, so each half shows at its own edge of the map instead of a line across it.
func polygons(poly orb.Polygon) ([]*plotter.Polygon, error) {
	poly = simplify.DouglasPeucker(simplifyDeg).Simplify(poly.Clone()).(orb.Polygon)
	rings := make([]plotter.XYs, len(poly))
	wraps := false
	for i, ring := range poly {
		xys := make(plotter.XYs, len(ring))
		for k, pt := range ring {
			x := pt.Lon()
			if k > 0 {
				switch prev := xys[k-1].X; {
				case x-prev > 180:
					x -= 360
				case prev-x > 180:
					x += 360
				}
			}
			if x < -180 || x > 180 {
				wraps = true
			}
			xys[k] = plotter.XY{X: x, Y: pt.Lat()}
		}
		rings[i] = xys
	}
	out := []*plotter.Polygon{}
	shifts := []float64{0}
	if wraps {
		shifts = []float64{-360, 0, 360}
	}
	for _, dx := range shifts {
		xyers := make([]plotter.XYer, len(rings))
		for i, ring := range rings {
			moved := make(plotter.XYs, len(ring))
			for k, xy := range ring {
				moved[k] = plotter.XY{X: xy.X + dx, Y: xy.Y}
			}
			xyers[i] = moved
		}
		pg, err := plotter.NewPolygon(xyers...)
		if err != nil {
			return nil, err
		}
		out = append(out, pg)
	}
	return out, nil
}

func dot(at orb.Point, clr color.Color) (*plotter.Scatter, error) {
	s, err := plotter.NewScatter(plotter.XYs{{X: at.Lon(), Y: at.Lat()}})
	if err != nil {
		return nil, err
	}
	s.GlyphStyle = draw.GlyphStyle{Color: clr, Radius: 4, Shape: outlinedCircle{}}
	return s, nil
}

// outlinedCircle is a filled circle with a dark rim, so a pale dot shows on a pale country.
type outlinedCircle struct{}

func (outlinedCircle) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	draw.CircleGlyph{}.DrawGlyph(c, sty, pt)
	rim := sty
	rim.Color = color.Gray{Y: 0x40}
	draw.RingGlyph{}.DrawGlyph(c, rim, pt)
}

// drawLegend draws a horizontal colour bar and a "no data" swatch in the band below the map.
func (m MapData) drawLegend(dc draw.Canvas, sc *Scale) {
	const barW, swatch vg.Length = 480, 14
	x0 := (MapWidth - barW) / 2
	legend(sc, m.Unit, false).Draw(draw.Crop(dc, x0, x0+barW-MapWidth, 8, mapLegendH-MapHeight-8))
	sx, sy := vg.Length(x0+barW+40), vg.Length(mapLegendH/2)
	dc.FillPolygon(NoData, []vg.Point{{X: sx, Y: sy}, {X: sx + swatch, Y: sy}, {X: sx + swatch, Y: sy + swatch}, {X: sx, Y: sy + swatch}})
	st := textStyle(12, color.Black)
	st.XAlign = draw.XLeft
	dc.FillText(st, vg.Point{X: sx + swatch + 6, Y: sy + swatch/2}, "no data")
}
