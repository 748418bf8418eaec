package store

import (
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// This file is the beacon's fast JSON path: a scanner for exactly the JSON
// that rum-js sends, straight into a Beacon, with no reflection and no
// intermediate values. Decoding was a third of an acknowledged beacon's CPU
// and most of its allocations (make bench, BenchmarkBeaconHandler).
//
// It only ever says "decoded" or "not mine": anything outside the plain
// case (null, an unknown or repeated member, a number out of range, a
// syntax error, invalid UTF-8, more list entries than a valid beacon has)
// goes to go-json-experiment/json, which decides and words the error. So
// it must never take what that decoder refuses, and what it takes must
// decode to the same Beacon (FuzzBeaconFastPath checks both).

// beaconParts holds a beacon's optional parts and the values its pointers
// point to, in one allocation instead of one per value.
type beaconParts struct {
	nav     BeaconNav
	vitals  BeaconVitals
	conn    BeaconConn
	fetches [4]ProbeFetch
	floats  [40]float64
	ints    [8]int64
	bools   [4]bool
	str     string
	nf, ni  uint8
	nb, nft uint8
}

// jsonScan reads JSON from s at i. Strings it returns are substrings of s
// (unless escaped): ownStrings then copies a beacon's into one allocation.
type jsonScan struct {
	s string
	i int
	p *beaconParts
}

func (d *jsonScan) parts() *beaconParts {
	if d.p == nil {
		d.p = new(beaconParts)
	}
	return d.p
}

func (d *jsonScan) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// lit consumes the byte c (after whitespace), if it is next.
func (d *jsonScan) lit(c byte) bool {
	d.space()
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string: valid UTF-8, no control characters, escapes decoded.
func (d *jsonScan) str() (string, bool) {
	if !d.lit('"') {
		return "", false
	}
	start, high := d.i, byte(0)
	for j := start; j < len(d.s); j++ {
		switch c := d.s[j]; {
		case c == '"':
			v := d.s[start:j]
			d.i = j + 1
			return v, high < utf8.RuneSelf || utf8.ValidString(v)
		case c == '\\':
			return d.escaped(start - 1)
		case c < 0x20:
			return "", false
		default:
			high |= c
		}
	}
	return "", false
}

// escaped reads a string holding escapes, from its opening quote at start.
func (d *jsonScan) escaped(start int) (string, bool) {
	for j := start + 1; j < len(d.s); j++ {
		switch d.s[j] {
		case '\\':
			j++
		case '"':
			v, err := jsontext.AppendUnquote(nil, d.s[start:j+1])
			d.i = j + 1
			return string(v), err == nil
		}
	}
	return "", false
}

// number reads a JSON number's text.
func (d *jsonScan) number() (string, bool) {
	d.space()
	s, i := d.s, d.i
	digits := func() bool {
		n := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return "", false
	}
	if i < len(s) && s[i] == '.' {
		if i++; !digits() {
			return "", false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		if i++; i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return "", false
		}
	}
	v := s[d.i:i]
	d.i = i
	return v, true
}

func (d *jsonScan) float() (float64, bool) {
	n, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(n, 64)
	return v, err == nil
}

// integer reads an integer of bits bits; a fraction or an exponent is not
// one (as go-json-experiment/json decides).
func (d *jsonScan) integer(bits int) (int64, bool) {
	n, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n, 10, bits)
	return v, err == nil
}

func (d *jsonScan) boolean() (v, ok bool) {
	d.space()
	switch {
	case len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "true":
		d.i += 4
		return true, true
	case len(d.s)-d.i >= 5 && d.s[d.i:d.i+5] == "false":
		d.i += 5
		return false, true
	}
	return false, false
}

// optFloat reads a number into *dst, in the parts when there is room.
func (d *jsonScan) optFloat(dst **float64) bool {
	v, ok := d.float()
	p := d.parts()
	if int(p.nf) < len(p.floats) {
		p.floats[p.nf] = v
		*dst = &p.floats[p.nf]
		p.nf++
	} else {
		*dst = new(float64) // beyond what a usual beacon holds
		**dst = v
	}
	return ok
}

func (d *jsonScan) optInt(dst **int64) bool {
	v, ok := d.integer(64)
	p := d.parts()
	if int(p.ni) < len(p.ints) {
		p.ints[p.ni] = v
		*dst = &p.ints[p.ni]
		p.ni++
	} else {
		*dst = new(int64) // beyond what a usual beacon holds
		**dst = v
	}
	return ok
}

func (d *jsonScan) optBool(dst **bool) bool {
	v, ok := d.boolean()
	p := d.parts()
	if int(p.nb) < len(p.bools) {
		p.bools[p.nb] = v
		*dst = &p.bools[p.nb]
		p.nb++
	} else {
		*dst = new(bool) // beyond what a usual beacon holds
		**dst = v
	}
	return ok
}

func (d *jsonScan) fetch() *ProbeFetch {
	p := d.parts()
	if int(p.nft) < len(p.fetches) {
		p.nft++
		return &p.fetches[p.nft-1]
	}
	return new(ProbeFetch)
}

// object reads an object, handing each member's name to member, which
// reads the value (and refuses a repeated name, see once).
func (d *jsonScan) object(member func(name string) bool) bool {
	if !d.lit('{') {
		return false
	}
	if d.lit('}') {
		return true
	}
	for {
		name, ok := d.str()
		if !ok || !d.lit(':') || !member(name) {
			return false
		}
		if !d.lit(',') {
			return d.lit('}')
		}
	}
}

// once marks member k of an object seen (a bit per name); false if it was
// already. seen lives in the caller's closure: passed through object, a
// func value, it would escape to the heap.
func once(seen *uint64, k uint) bool {
	if *seen&(1<<k) != 0 {
		return false
	}
	*seen |= 1 << k
	return true
}

// array reads an array, calling elem for each element.
func (d *jsonScan) array(elem func() bool) bool {
	if !d.lit('[') {
		return false
	}
	if d.lit(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if !d.lit(',') {
			return d.lit(']')
		}
	}
}

// end tells whether only whitespace is left.
func (d *jsonScan) end() bool {
	d.space()
	return d.i == len(d.s)
}
