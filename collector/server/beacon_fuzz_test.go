package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
)

type fakeSites struct{ site store.Site }

func (f fakeSites) Lookup(_ context.Context, key string) (store.Site, bool, error) {
	return f.site, key == f.site.Key, nil
}
func (f fakeSites) KnownOrigin(_ context.Context, origin string) (bool, error) {
	return f.site.AllowsOrigin(origin), nil
}

type discard struct{}

func (discard) Write(context.Context, []store.BeaconRow) error { return nil }

// FuzzBeacon feeds arbitrary bodies to the decoder and to the handler: no
// input may panic, anything the decoder refuses is a 4xx, and what it takes
// survives a round trip through JSON unchanged and is within every declared
// range (beaconOutOfRange).
func FuzzBeacon(f *testing.F) {
	f.Add(docBeacon(f, "mrs_fuzz"))
	f.Add(minimalBeacon("mrs_fuzz", "00000000-0000-4000-8000-000000000000", true))
	f.Add([]byte(`{"v":1,"site":"mrs_fuzz","pv":"00000000-0000-4000-8000-000000000000","url":"x","sample":1,"webdriver":false,"hosts":[{"host":"a","count":1,"median_ms":0,"bytes":0,"tao":false}]}`))
	f.Add([]byte(`{"v":1,"nav":{"type":"navigate"},"vitals":{},"cdn_probes":[{"cold":{"error":true,"status":503}}]}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Add([]byte("\xff\xfe{\"v\":1}"))
	f.Add([]byte(`{"v":1e400}`))
	// One edit per boundary of a declared range, both sides.
	good := compactDocBeacon(f)
	for _, e := range beaconBoundaries {
		f.Add([]byte(strings.Replace(good, e.from, e.to, 1)))
	}

	sites := fakeSites{site: store.Site{Key: "mrs_fuzz", Origins: []string{"https://shop.example"}}}
	h := server.New(server.Config{Sites: sites, Beacons: discard{}})
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := server.DecodeBeacon(body)
		if err == nil {
			if bad := beaconOutOfRange(b); bad != "" {
				t.Fatalf("accepted %q with out-of-range %s", body, bad)
			}
			again, err := json.Marshal(b)
			if err != nil {
				t.Fatalf("cannot re-encode an accepted beacon: %v", err)
			}
			b2, err := server.DecodeBeacon(again)
			if err != nil {
				t.Fatalf("accepted %q but not its re-encoding %q: %v", body, again, err)
			}
			if again2, _ := json.Marshal(b2); !bytes.Equal(again, again2) {
				t.Fatalf("round trip changed the beacon:\n%s\n%s", again, again2)
			}
		}
		r := httptest.NewRequest("POST", "/v1/beacon", bytes.NewReader(body))
		r.Header.Set("Content-Type", "text/plain")
		r.Header.Set("Origin", "https://shop.example")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case err != nil && (w.Code < 400 || w.Code > 499):
			t.Fatalf("decoder refused %q (%v) but the handler answered %d", body, err, w.Code)
		case err == nil && b.Site == "mrs_fuzz" && w.Code != http.StatusNoContent:
			t.Fatalf("decoder took %q but the handler answered %d %s", body, w.Code, w.Body)
		case err == nil && b.Site != "mrs_fuzz" && w.Code != http.StatusBadRequest:
			t.Fatalf("unknown site %q: got %d, want 400", b.Site, w.Code)
		}
	})
}

// BenchmarkDecodeBeacon decodes and validates BEACON.md's example, compact
// (as rum-js sends it): the collector's per-beacon parsing cost.
func BenchmarkDecodeBeacon(b *testing.B) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, docBeacon(b, "mrs_bench")); err != nil {
		b.Fatal(err)
	}
	raw := buf.Bytes()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := server.DecodeBeacon(raw); err != nil {
			b.Fatal(err)
		}
	}
}
