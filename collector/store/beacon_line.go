package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// beaconLine is a beacon's journal line: the beacon and what the collector
// derived. B is struct{} to write the line around the beacon as received,
// Beacon to read it back. The codec below writes and reads the same line
// by hand, appending into the journal's buffer: a line cost two
// allocations of its size and a reflective pass (make bench); the general
// decoder still reads whatever the fast path declines (older lines too).
type beaconLine[B any] struct {
	ReceivedAt time.Time `json:"received_at"`
	Visitor    Visitor   `json:"visitor"`
	Beacon     B         `json:"beacon"`
}

var beaconCodec = codec[BeaconRow]{
	encode: encodeBeaconLine,
	replay: func(r *BeaconRow) { r.Replay = true },
	decode: decodeBeaconLine,
}

func encodeBeaconLine(dst []byte, r *BeaconRow) ([]byte, error) {
	raw := r.Raw
	if raw == nil {
		var err error
		if raw, err = json.Marshal(&r.Beacon); err != nil {
			return dst, err
		}
	}
	n := len(dst)
	dst, err := appendLineHead(dst, r)
	if err != nil {
		return dst[:n], err
	}
	// The body takes the place of the beacon object. A newline in valid
	// JSON can only be whitespace: a space keeps the line whole.
	start := len(dst)
	dst = append(dst, raw...)
	for i := bytes.IndexByte(dst[start:], '\n'); i >= 0; i = bytes.IndexByte(dst[start:], '\n') {
		dst[start+i] = ' '
	}
	r.Raw = nil // in the line now; rows queued for ClickHouse need not hold it twice
	return append(dst, "}\n"...), nil
}

// appendLineHead appends the line up to its beacon, as
// go-json-experiment/json writes a beaconLine (TestBeaconLineHead).
func appendLineHead(dst []byte, r *BeaconRow) ([]byte, error) {
	if y := r.ReceivedAt.Year(); y < 0 || y > 9999 {
		return dst, errors.New("received_at: year outside [0,9999]")
	}
	dst = append(dst, `{"received_at":"`...)
	dst = r.ReceivedAt.AppendFormat(dst, time.RFC3339Nano)
	v := &r.Visitor
	q := quoter{b: dst}
	q.str(`","visitor":{"Country":`, v.Country)
	q.str(`,"Region":`, v.Region)
	q.str(`,"City":`, v.City)
	q.b = strconv.AppendUint(append(q.b, `,"ASN":`...), uint64(v.ASN), 10)
	q.str(`,"ASOrg":`, v.ASOrg)
	q.str(`,"Browser":`, v.Browser)
	q.str(`,"BrowserVersion":`, v.BrowserVersion)
	q.str(`,"OS":`, v.OS)
	q.str(`,"Device":`, v.Device)
	q.b = strconv.AppendBool(append(q.b, `,"Bot":`...), v.Bot)
	return append(q.b, `},"beacon":`...), q.err
}

// quoter appends names and quoted strings, keeping the first error (a
// string that is not valid UTF-8).
type quoter struct {
	b   []byte
	err error
}

func (q *quoter) str(name, s string) {
	var err error
	q.b, err = jsontext.AppendQuote(append(q.b, name...), s)
	if q.err == nil {
		q.err = err
	}
}

func decodeBeaconLine(line []byte) (BeaconRow, error) {
	var r BeaconRow
	if d := (jsonScan{s: view(line)}); d.beaconLine(&r) && d.end() {
		ownStrings(&r.Beacon, &r.Visitor)
		return r, nil
	}
	// One pass with the beacon decoder's library, lenient as it always
	// was here: what the journal holds was checked on the way in.
	var l beaconLine[Beacon]
	err := jsonv2.Unmarshal(line, &l)
	return BeaconRow{Beacon: l.Beacon, Visitor: l.Visitor, ReceivedAt: l.ReceivedAt}, err
}

func (d *jsonScan) beaconLine(r *BeaconRow) bool {
	var seen uint64
	return d.object(func(name string) bool {
		switch name {
		case "received_at":
			s, ok := d.str()
			t, err := time.Parse(time.RFC3339Nano, s)
			// Only the form this file writes; the general decoder
			// judges any other.
			var buf [64]byte
			r.ReceivedAt = t
			return ok && err == nil && string(t.AppendFormat(buf[:0], time.RFC3339Nano)) == s && once(&seen, 0)
		case "visitor":
			return d.visitor(&r.Visitor) && once(&seen, 1)
		case "beacon":
			return d.beacon(&r.Beacon) && once(&seen, 2)
		}
		return false
	})
}

func (d *jsonScan) visitor(v *Visitor) bool {
	var seen uint64
	return d.object(func(name string) bool {
		var ok bool
		switch name {
		case "Country":
			v.Country, ok = d.str()
			return ok && once(&seen, 0)
		case "Region":
			v.Region, ok = d.str()
			return ok && once(&seen, 1)
		case "City":
			v.City, ok = d.str()
			return ok && once(&seen, 2)
		case "ASN":
			n, ok := d.number()
			asn, err := strconv.ParseUint(n, 10, 32)
			v.ASN = uint32(asn)
			return ok && err == nil && once(&seen, 3)
		case "ASOrg":
			v.ASOrg, ok = d.str()
			return ok && once(&seen, 4)
		case "Browser":
			v.Browser, ok = d.str()
			return ok && once(&seen, 5)
		case "BrowserVersion":
			v.BrowserVersion, ok = d.str()
			return ok && once(&seen, 6)
		case "OS":
			v.OS, ok = d.str()
			return ok && once(&seen, 7)
		case "Device":
			v.Device, ok = d.str()
			return ok && once(&seen, 8)
		case "Bot":
			v.Bot, ok = d.boolean()
			return ok && once(&seen, 9)
		}
		return false
	})
}
