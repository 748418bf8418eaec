package picture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/encoding/wkb"
)

// countriesFile is Natural Earth 1:110m admin-0 countries, converted by internal/gen (see
// README.md).
//
//go:embed countries-110m.wkb.gz
var countriesFile []byte

// Country is one country's outline.
type Country struct {
	Code string // ISO 3166 alpha-2, "" where the source has none
	Name string
	Geom orb.MultiPolygon
}

var (
	loadOnce  sync.Once
	countries []Country
	loadErr   error
)

// Countries returns the embedded country shapes, decoded once.
func Countries() ([]Country, error) {
	loadOnce.Do(func() { countries, loadErr = decodeCountries(countriesFile) })
	return countries, loadErr
}

func decodeCountries(b []byte) ([]Country, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("cannot read country shapes: %w", err)
	}
	r := bufio.NewReader(zr)
	var out []Country
	for {
		code, err := field(r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read country shapes: %w", err)
		}
		name, err := field(r)
		if err != nil {
			return nil, fmt.Errorf("cannot read country shape %q: %w", code, err)
		}
		raw, err := field(r)
		if err != nil {
			return nil, fmt.Errorf("cannot read country shape %q: %w", code, err)
		}
		g, err := wkb.Unmarshal(raw)
		if err != nil {
			return nil, fmt.Errorf("cannot decode country shape %q: %w", code, err)
		}
		c := Country{Code: string(code), Name: string(name)}
		switch g := g.(type) {
		case orb.Polygon:
			c.Geom = orb.MultiPolygon{g}
		case orb.MultiPolygon:
			c.Geom = g
		default:
			return nil, fmt.Errorf("cannot use country shape %q: geometry is %s, want a polygon", code, g.GeoJSONType())
		}
		out = append(out, c)
	}
}

// field reads one uvarint-length-prefixed byte string.
func field(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > 1<<20 {
		return nil, fmt.Errorf("field of %d bytes is too long", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("truncated field: %w", io.ErrUnexpectedEOF)
	}
	return b, nil
}
