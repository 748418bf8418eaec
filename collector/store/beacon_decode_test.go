package store

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// beaconExample is rum-js/BEACON.md's full example.
func beaconExample(tb testing.TB) []byte {
	tb.Helper()
	doc, err := os.ReadFile("../../rum-js/BEACON.md")
	if err != nil {
		tb.Fatal(err)
	}
	_, rest, _ := bytes.Cut(doc, []byte("```json\n"))
	example, _, ok := bytes.Cut(rest, []byte("\n```"))
	if !ok {
		tb.Fatal("rum-js/BEACON.md has no ```json example")
	}
	return bytes.ReplaceAll(example, []byte("SITEKEY"), []byte("mrs_x"))
}

// FuzzBeaconFastPath holds the fast path to go-json-experiment/json: what
// it decodes, the general decoder decodes too (strictly) and to the same
// Beacon; what it declines is left to the general decoder.
func FuzzBeaconFastPath(f *testing.F) {
	ex := beaconExample(f)
	f.Add(ex)
	for _, edit := range [][2]string{
		{`"v": 1`, `"v": 1.0`}, {`"v": 1`, `"v": -0`}, {`"v": 1`, `"v": 1e0`}, {`"v": 1`, `"v": null`},
		{`"v": 1`, `"\u0076": 1`}, {`"v": 1`, `"V": 1`}, {`"v": 1`, `"v": 1, "v": 1`},
		{`"hosts": [`, `"hosts": [], "x": [`}, {`"server_timing": [`, `"server_timing": [], "y": [`},
		{`"url": "`, `"url": "\ud800`}, {`"url": "`, `"url": "\"\\\/\b\f\n\r\t\u00e9`}, {`"url": "`, "\"url\": \"\xff"},
		{`"url": "`, "\"url\": \"\x01"}, {`"url": "`, `"url": "é€😀`}, {`"sample": 1`, `"sample": 1e400`},
		{`"sample": 1`, `"sample": 01`}, {`"sample": 1`, `"sample": 1.`}, {`"sample": 1`, `"sample": -`},
		{`"tao": true`, `"tao": null`}, {`"tao": true`, `"tao": tru`}, {`"count": 2`, `"count": 9223372036854775808`},
		{`"nav": {`, `"nav": {}, "nav2": {`}, {`"cold": {`, `"cold": {"error": true}, "cold2": {`},
	} {
		f.Add(bytes.Replace(ex, []byte(edit[0]), []byte(edit[1]), 1))
	}
	f.Add([]byte(`{"v":1,"site":"mrs_x","pv":"00000000-0000-4000-8000-000000000000","url":"x","sample":1,"webdriver":false}`))
	f.Add([]byte(`{"v":1,"hosts":[],"server_timing":[],"cdn_probes":[]} `))
	f.Add([]byte(`{"v":1} {}`))
	f.Add([]byte(` {} `))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"nav":{"delivery_type":""},"vitals":{},"conn":{}}`))
	f.Add([]byte(`{"cdn_probes":[{"cold":{"dns_ms":1,"connect_ms":2,"tls_ms":3,"ttfb_ms":4,"duration_ms":5,"bytes":6,"error":false,"status":0}}]}`))
	f.Add([]byte(`{"hosts":[{"host":"a","count":1,"median_ms":1,"bytes":1,"tao":false},{"host":"b","count":-1,"median_ms":-0,"bytes":0,"tao":true}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast Beacon
		if !fastBeacon(raw, &fast) {
			return
		}
		var want Beacon
		if err := jsonv2.Unmarshal(raw, &want, jsonv2.RejectUnknownMembers(true)); err != nil {
			t.Fatalf("the fast path took %q, which the general decoder refuses: %v", raw, err)
		}
		clear(raw) // the beacon owns its strings
		if !reflect.DeepEqual(fast, want) {
			g, _ := jsonv2.Marshal(fast)
			w, _ := jsonv2.Marshal(want)
			t.Fatalf("fast path decoded\n%s\nwant\n%s", g, w)
		}
	})
}

// A beacon and a journal line decoded on the fast path hold no string
// pointing into their input: every string field, filled, survives the
// input being overwritten.
func TestOwnStrings(t *testing.T) {
	var row BeaconRow
	n := 0
	fill(reflect.ValueOf(&row.Beacon).Elem(), &n)
	fill(reflect.ValueOf(&row.Visitor).Elem(), &n)
	row.ReceivedAt = time.Date(2026, 12, 4, 1, 2, 3, 0, time.UTC)
	raw, err := jsonv2.Marshal(&row.Beacon)
	if err != nil {
		t.Fatal(err)
	}
	var b Beacon
	if !fastBeacon(raw, &b) {
		t.Fatalf("the fast path declines %s", raw)
	}
	clear(raw)
	if !reflect.DeepEqual(b, row.Beacon) {
		t.Errorf("after its input was overwritten, the beacon is\n%+v\nwant\n%+v", b, row.Beacon)
	}
	row.Raw = nil
	line, err := encodeBeaconLine(nil, &row)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeBeaconLine(line[:len(line)-1])
	clear(line)
	if err != nil || !reflect.DeepEqual(back, row) {
		t.Errorf("after its line was overwritten, the row read back is\n%+v (%v)\nwant\n%+v", back, err, row)
	}
}

// fill gives every field of v a value: each string its own.
func fill(v reflect.Value, n *int) {
	switch v.Kind() {
	case reflect.String:
		*n++
		v.SetString("s" + strconv.Itoa(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Uint32:
		if v.CanInt() {
			v.SetInt(1)
		} else {
			v.SetUint(1)
		}
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), n)
		fill(v.Index(1), n)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && v.Type().Field(i).Tag.Get("json") != "-" {
				fill(v.Field(i), n)
			}
		}
	}
}

// The example beacon takes the fast path, not the general decoder.
func TestBeaconFastPathTakesExample(t *testing.T) {
	ex := beaconExample(t)
	var b Beacon
	if !fastBeacon(ex, &b) {
		t.Fatal("the fast path declines rum-js/BEACON.md's example")
	}
	if b.Nav == nil || len(b.Hosts) == 0 || len(b.CDNProbes) == 0 || !strings.HasPrefix(b.URL, "https://") {
		t.Fatalf("decoded example misses parts: %+v", b)
	}
}

func BenchmarkUnmarshalBeacon(b *testing.B) {
	benchDecode(b, UnmarshalBeacon)
}

// BenchmarkUnmarshalBeaconGeneral is the general decoder on the same
// beacon: what the fast path saves.
func BenchmarkUnmarshalBeaconGeneral(b *testing.B) {
	benchDecode(b, func(raw []byte, bc *Beacon) error {
		return jsonv2.Unmarshal(raw, bc, jsonv2.RejectUnknownMembers(true))
	})
}

// benchDecode decodes rum-js/BEACON.md's example, compacted, with decode.
func benchDecode(b *testing.B, decode func(raw []byte, bc *Beacon) error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, beaconExample(b)); err != nil {
		b.Fatal(err)
	}
	raw := buf.Bytes()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var bc Beacon
		if err := decode(raw, &bc); err != nil {
			b.Fatal(err)
		}
	}
}

// The journal line's head is written as go-json-experiment/json wrote it,
// so journals from either collector read back the same.
func TestBeaconLineHead(t *testing.T) {
	for _, r := range []BeaconRow{
		{ReceivedAt: time.Date(2026, 12, 4, 22, 42, 4, 123456789, time.UTC)},
		{ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)), Visitor: Visitor{Country: "BR", City: "São Paulo",
			ASN: 4294967295, ASOrg: `"Quoted" <&> \ org` + "\n\u2028", Browser: "Chrome", BrowserVersion: "131", OS: "Android", Device: "bot", Bot: true}},
		{ReceivedAt: time.Now()},
	} {
		want, err := jsonv2.Marshal(beaconLine[struct{}]{ReceivedAt: r.ReceivedAt, Visitor: r.Visitor})
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendLineHead(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(got) + "{}}"; got != string(want) {
			t.Errorf("head\n%s\nwant\n%s", got, want)
		}
		line, err := encodeBeaconLine(nil, &BeaconRow{Beacon: Beacon{V: 1, Site: "mrs_x"}, Visitor: r.Visitor, ReceivedAt: r.ReceivedAt})
		if err != nil {
			t.Fatal(err)
		}
		var d jsonScan
		d.s = string(line[:len(line)-1])
		var back BeaconRow
		if !d.beaconLine(&back) || !d.end() || !back.ReceivedAt.Equal(r.ReceivedAt) || back.Visitor != r.Visitor {
			t.Errorf("the fast path does not read back %s", line)
		}
	}
	bad := BeaconRow{Visitor: Visitor{City: "\xff"}}
	if _, err := encodeBeaconLine(nil, &bad); err == nil {
		t.Error("a row with invalid UTF-8 encodes")
	}
}

// FuzzBeaconLine holds the journal line's fast path to the general
// decoder, as FuzzBeaconFastPath does the beacon's.
func FuzzBeaconLine(f *testing.F) {
	row := BeaconRow{Visitor: Visitor{Country: "NL", ASN: 64512, Browser: "Chrome", Device: "desktop"},
		ReceivedAt: time.Date(2026, 12, 4, 22, 42, 4, 120000000, time.UTC), Raw: beaconExample(f)}
	line, err := encodeBeaconLine(nil, &row)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(line[:len(line)-1])
	f.Add(bytes.Replace(line, []byte(`04.12Z`), []byte(`04.120Z`), 1))
	f.Add(bytes.Replace(line, []byte(`04.12Z`), []byte(`04.12+01:00`), 1))
	f.Add(bytes.Replace(line, []byte(`"ASN":64512`), []byte(`"ASN":-0`), 1))
	f.Add(bytes.Replace(line, []byte(`"ASN":64512`), []byte(`"ASN":4294967296`), 1))
	f.Add(bytes.Replace(line, []byte(`"Bot":false`), []byte(`"Bot":false,"Bot":false`), 1))
	f.Fuzz(func(t *testing.T, line []byte) {
		var fast BeaconRow
		d := jsonScan{s: string(line)}
		if !d.beaconLine(&fast) || !d.end() {
			return
		}
		var l beaconLine[Beacon]
		if err := jsonv2.Unmarshal(line, &l); err != nil {
			t.Fatalf("the fast path took %q, which the general decoder refuses: %v", line, err)
		}
		want := BeaconRow{Beacon: l.Beacon, Visitor: l.Visitor, ReceivedAt: l.ReceivedAt}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: fast path decoded\n%+v\nwant\n%+v", line, fast, want)
		}
	})
}
