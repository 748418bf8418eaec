package picture

import (
	"errors"
	"fmt"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// HeatmapData is a country (rows) × CDN or member (columns) table of latencies.
type HeatmapData struct {
	Title      string
	Rows, Cols []string
	Value      [][]float64 // [row][col], typically p75; NaN = no data
	Count      [][]uint64  // [row][col] samples; nil or the shape of Value
	Unit       string      // "ms" when empty
}

// Heatmap sizes, in pixels (PNG) or points (SVG).
const (
	heatCellW   = 110
	heatCellH   = 44
	heatLegendW = 110
	heatMarginW = 190 // row labels and axis label
	heatMarginH = 130 // title, column labels and axis label
)

// HeatmapSize returns the picture's size for h: a fixed cell size plus margins, at least
// 600×300.
func HeatmapSize(h HeatmapData) (width, height int) {
	return max(600, heatMarginW+heatCellW*len(h.Cols)+heatLegendW), max(300, heatMarginH+heatCellH*len(h.Rows))
}

// Heatmap draws h as format ("svg" or "png") to w: one cell per row and column, coloured by
// value on the Scale (fast yellow, slow purple, no data grey), printing the value and the sample
// count, with a colour bar on the right.
func Heatmap(w io.Writer, format string, h HeatmapData) error {
	if err := h.check(); err != nil {
		return err
	}
	width, height := HeatmapSize(h)
	c, err := newCanvas(format, width, height)
	if err != nil {
		return err
	}
	var all []float64
	for _, row := range h.Value {
		all = append(all, row...)
	}
	sc := scaleFor(all)

	p, err := h.plot(sc)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	legendW := vg.Length(heatLegendW)
	p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
	legend(sc, h.Unit, true).Draw(draw.Crop(dc, vg.Length(width)-legendW, 0, vg.Length(heatMarginH/2), -vg.Length(heatMarginH/2)))
	return write(w, c, format)
}

func (h HeatmapData) check() error {
	if len(h.Rows) == 0 || len(h.Cols) == 0 {
		return errors.New("cannot draw heatmap: no rows or no columns")
	}
	if len(h.Value) != len(h.Rows) {
		return fmt.Errorf("cannot draw heatmap: %d value rows for %d row names", len(h.Value), len(h.Rows))
	}
	for i, row := range h.Value {
		if len(row) != len(h.Cols) {
			return fmt.Errorf("cannot draw heatmap: row %q has %d values for %d columns", h.Rows[i], len(row), len(h.Cols))
		}
		if h.Count != nil && (len(h.Count) != len(h.Rows) || len(h.Count[i]) != len(h.Cols)) {
			return fmt.Errorf("cannot draw heatmap: counts of row %q do not match its values", h.Rows[i])
		}
	}
	return nil
}

func (h HeatmapData) plot(sc *Scale) (*plot.Plot, error) {
	p := plot.New()
	useSans(p)
	p.Title.Text = h.Title
	p.Title.TextStyle.Font.Size = 16
	p.Title.Padding = 10
	p.X.Label.Text = "CDN / member"
	p.Y.Label.Text = "country"
	p.NominalX(h.Cols...)
	// Row 0 is drawn at the top.
	ys := make([]string, len(h.Rows))
	for i, r := range h.Rows {
		ys[len(h.Rows)-1-i] = r
	}
	p.NominalY(ys...)
	p.X.Padding, p.Y.Padding = 0, 0

	labels := plotter.XYLabels{}
	var styles []text.Style
	for i := range h.Rows {
		y := float64(len(h.Rows) - 1 - i)
		for j := range h.Cols {
			x := float64(j)
			v := h.Value[i][j]
			clr := sc.Color(v)
			cell, err := plotter.NewPolygon(plotter.XYs{{X: x - .5, Y: y - .5}, {X: x + .5, Y: y - .5}, {X: x + .5, Y: y + .5}, {X: x - .5, Y: y + .5}})
			if err != nil {
				return nil, fmt.Errorf("cannot draw heatmap cell: %w", err)
			}
			cell.Color = clr
			cell.LineStyle.Color = NoData
			cell.LineStyle.Width = 1
			p.Add(cell)
			labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: y})
			labels.Labels = append(labels.Labels, h.cellText(i, j))
			styles = append(styles, textStyle(11, textOn(clr)))
		}
	}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("cannot label heatmap: %w", err)
	}
	l.TextStyle = styles
	p.Add(l)
	return p, nil
}

func (h HeatmapData) cellText(i, j int) string {
	var n string
	if h.Count != nil {
		n = fmt.Sprintf("\nn=%d", h.Count[i][j])
	}
	v := h.Value[i][j]
	if math.IsNaN(v) {
		return "no data" + n
	}
	return fmt.Sprintf("%.0f %s%s", v, unitOr(h.Unit), n)
}

// legend is a colour bar for sc, labelled "p75 (unit)".
func legend(sc *Scale, unit string, vertical bool) *plot.Plot {
	p := plot.New()
	useSans(p)
	p.Add(&plotter.ColorBar{ColorMap: sc, Vertical: vertical, Colors: 64})
	label := fmt.Sprintf("p75 (%s)", unitOr(unit))
	if vertical {
		p.HideX()
		p.Y.Label.Text = label
	} else {
		p.HideY()
		p.X.Label.Text = label
	}
	return p
}
