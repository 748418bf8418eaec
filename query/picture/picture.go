// Package picture draws latency pictures (a country × CDN heatmap and a world choropleth) as
// SVG or PNG with gonum/plot.
package picture

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// dpi is 72 so that one vg point is one PNG pixel and the SVG's width in pt equals the PNG's
// width in pixels.
const dpi = 72

// newCanvas returns a white canvas of w×h points for format "svg" or "png".
func newCanvas(format string, w, h int) (vg.CanvasWriterTo, error) {
	width, height := vg.Length(w), vg.Length(h)
	var c vg.CanvasWriterTo
	switch format {
	case "svg":
		c = vgsvg.New(width, height)
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi),
			vgimg.UseBackgroundColor(color.White))}
	default:
		return nil, fmt.Errorf("cannot draw format %q: use svg or png", format)
	}
	dc := draw.New(c)
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: width, Y: 0}, {X: width, Y: height}, {X: 0, Y: height}})
	return c, nil
}

func write(w io.Writer, c vg.CanvasWriterTo, format string) error {
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("cannot write %s: %w", format, err)
	}
	return nil
}

func textStyle(size vg.Length, clr color.Color) text.Style {
	return text.Style{
		Color:   clr,
		Font:    font.From(sans, size),
		XAlign:  draw.XCenter,
		YAlign:  draw.YCenter,
		Handler: plot.DefaultTextHandler,
	}
}

// sans is Liberation Sans, which gonum/plot registers in its default font cache.
var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

// useSans switches a plot's title, axis labels and tick labels to sans.
func useSans(p *plot.Plot) {
	p.Title.TextStyle.Font.Variant = sans.Variant
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Variant = sans.Variant
		a.Tick.Label.Font.Variant = sans.Variant
	}
}

func unitOr(u string) string {
	if u == "" {
		return "ms"
	}
	return u
}
