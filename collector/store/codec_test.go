package store

import (
	"bytes"
	json "encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// What the journal reads back is what was written, field for field, and
// each row is exactly one line.
func TestJournalCodecRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("../../internal/result/testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no result golden files found")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r result.Result
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		roundTrip(t, filepath.Base(f), jsonCodec[Row](), Row{Result: r, Region: "eu-west", ReceivedAt: time.Now().UTC()})
	}
	ms := func(v float64) *float64 { return &v }
	n := int64(1234)
	tao := true
	row := BeaconRow{
		Beacon: Beacon{V: 1, Site: "mrs_x", PV: "00000000-0000-4000-8000-000000000001", URL: "https://shop.example/p", Sample: 0.5,
			Nav:          &BeaconNav{Type: "navigate", DNSMs: ms(1.5), TransferBytes: &n},
			Vitals:       &BeaconVitals{LCPMs: ms(200), CLS: ms(0.08)},
			ServerTiming: []ServerTiming{{Name: "app", Dur: ms(12.5), Desc: "render \"x\"\n"}},
			Hosts:        []BeaconHost{{Host: "img.cdn1.example", CDN: "cdn1", Count: 2, MedianMs: ms(50), Bytes: &n, TAO: &tao}},
			CDNProbes:    []CDNProbe{{CDN: "cdn1", URL: "https://p.cdn1.example/x.gif", Cold: &ProbeFetch{Error: true, Status: 503}, Warm: &ProbeFetch{DurationMs: ms(3)}}}},
		Visitor:    Visitor{Country: "BR", City: "São Paulo", ASN: 64512, Browser: "Chrome", Device: "mobile"},
		ReceivedAt: time.Now().UTC(),
	}
	roundTrip(t, "beacon encoded", beaconCodec, row)
	// As received: pretty-printed, newlines included.
	pretty, err := json.MarshalIndent(&row.Beacon, "", "\n  ")
	if err != nil {
		t.Fatal(err)
	}
	row.Raw = pretty
	roundTrip(t, "beacon as received", beaconCodec, row)
}

func roundTrip[T any](t *testing.T, name string, c codec[T], in T) {
	t.Helper()
	line, err := c.encode([]byte("before\n"), &in)
	if err != nil {
		t.Fatalf("%s: encode: %v", name, err)
	}
	line, ok := bytes.CutPrefix(line, []byte("before\n"))
	if !ok || bytes.IndexByte(line, '\n') != len(line)-1 {
		t.Fatalf("%s: want one line appended, got %q", name, line)
	}
	out, err := c.decode(line[:len(line)-1])
	if err != nil {
		t.Fatalf("%s: decode %s: %v", name, line, err)
	}
	want, _ := json.Marshal(&in)
	got, _ := json.Marshal(&out)
	if string(got) != string(want) {
		t.Errorf("%s: read back\n%s\nwant\n%s", name, got, want)
	}
}
