package picture

import (
	"image/color"
	"math"

	"gonum.org/v1/plot/palette"
)

// NoData is the colour of a cell or country without data.
var NoData = color.RGBA{R: 0xd9, G: 0xd9, B: 0xd9, A: 0xff}

// viridis holds matplotlib's viridis at 0, 0.1, …, 1: perceptually uniform, readable in grey and
// by the colour-blind. The scale runs it backwards, so fast is light yellow and slow is dark
// purple, which draws the eye to the slow places.
var viridis = []color.RGBA{
	{0x44, 0x01, 0x54, 0xff}, {0x48, 0x24, 0x75, 0xff}, {0x41, 0x44, 0x87, 0xff},
	{0x35, 0x5f, 0x8d, 0xff}, {0x2a, 0x78, 0x8e, 0xff}, {0x21, 0x91, 0x8c, 0xff},
	{0x22, 0xa8, 0x84, 0xff}, {0x44, 0xbf, 0x70, 0xff}, {0x7a, 0xd1, 0x51, 0xff},
	{0xbd, 0xdf, 0x26, 0xff}, {0xfd, 0xe7, 0x25, 0xff},
}

// Scale maps a latency onto reversed viridis: Min (fast) is yellow, Max (slow) dark purple.
// Values outside [Min, Max] are clamped; NaN is NoData. It implements palette.ColorMap so
// gonum/plot's ColorBar can draw it as a legend.
type Scale struct {
	min, max float64
}

var _ palette.ColorMap = (*Scale)(nil)

// NewScale returns a scale over [lo, hi]; an empty or inverted range is widened so a legend
// can still be drawn.
func NewScale(lo, hi float64) *Scale {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		lo, hi = 0, 1
	}
	if hi <= lo {
		pad := math.Max(1, math.Abs(lo)*0.1)
		lo, hi = lo-pad, lo+pad
	}
	return &Scale{min: lo, max: hi}
}

// scaleFor spans the finite values in vs.
func scaleFor(vs []float64) *Scale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return NewScale(lo, hi)
}

// Color returns the colour for v.
func (s *Scale) Color(v float64) color.RGBA {
	if math.IsNaN(v) {
		return NoData
	}
	t := (v - s.min) / (s.max - s.min)
	t = 1 - math.Max(0, math.Min(1, t)) // reversed: fast is the light end
	pos := t * float64(len(viridis)-1)
	i := int(math.Floor(pos))
	if i >= len(viridis)-1 {
		return viridis[len(viridis)-1]
	}
	f := pos - float64(i)
	a, b := viridis[i], viridis[i+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + f*(float64(y)-float64(x)))) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xff}
}

// At implements palette.ColorMap.
func (s *Scale) At(v float64) (color.Color, error) { return s.Color(v), nil }

// Min implements palette.ColorMap.
func (s *Scale) Min() float64 { return s.min }

// Max implements palette.ColorMap.
func (s *Scale) Max() float64 { return s.max }

// SetMin implements palette.ColorMap.
func (s *Scale) SetMin(v float64) { s.min = v }

// SetMax implements palette.ColorMap.
func (s *Scale) SetMax(v float64) { s.max = v }

// Alpha implements palette.ColorMap; the scale is always opaque.
func (s *Scale) Alpha() float64 { return 1 }

// SetAlpha implements palette.ColorMap and is ignored: the scale is always opaque.
func (s *Scale) SetAlpha(float64) {}

// Palette implements palette.ColorMap.
func (s *Scale) Palette(n int) palette.Palette {
	cs := make([]color.Color, n)
	for i := range cs {
		v := s.min
		if n > 1 {
			v += (s.max - s.min) * float64(i) / float64(n-1)
		}
		cs[i] = s.Color(v)
	}
	return plainPalette(cs)
}

type plainPalette []color.Color

func (p plainPalette) Colors() []color.Color { return p }

// textOn returns black or white, whichever reads better on bg.
func textOn(bg color.RGBA) color.Color {
	lum := 0.2126*float64(bg.R) + 0.7152*float64(bg.G) + 0.0722*float64(bg.B)
	if lum > 140 {
		return color.Black
	}
	return color.White
}
