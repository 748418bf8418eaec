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

// compactDocBeacon is BEACON.md's example as rum-js sends it (compact).
func compactDocBeacon(t testing.TB) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, docBeacon(t, "mrs_x")); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// beaconBoundaries are one edit of BEACON.md's example per boundary of a
// declared range (rum-js/BEACON.md, "Ranges"): just inside is accepted
// (field ""), just outside is refused naming field.
var beaconBoundaries = []struct{ from, to, field string }{
	{`"sample":1`, `"sample":1`, ""},
	{`"sample":1`, `"sample":0.0001`, ""},
	{`"sample":1`, `"sample":0`, "sample"},
	{`"sample":1`, `"sample":1.0001`, "sample"},
	{`"sample":1`, `"sample":-1`, "sample"},
	{`"redirect_ms":12.3`, `"redirect_ms":0`, ""},
	{`"redirect_ms":12.3`, `"redirect_ms":-0.1`, "nav.redirect_ms"},
	{`"dns_ms":10.2`, `"dns_ms":10000000`, ""},
	{`"dns_ms":10.2`, `"dns_ms":10000000.1`, "nav.dns_ms"},
	{`"load_ms":510.4`, `"load_ms":1e300`, "nav.load_ms"},
	{`"transfer_bytes":12345`, `"transfer_bytes":0`, ""},
	{`"transfer_bytes":12345`, `"transfer_bytes":9007199254740991`, ""},
	{`"transfer_bytes":12345`, `"transfer_bytes":9007199254740992`, "nav.transfer_bytes"},
	{`"transfer_bytes":12345`, `"transfer_bytes":-1`, "nav.transfer_bytes"},
	{`"transfer_bytes":12345`, `"transfer_bytes":9223372036854775808`, "nav.transfer_bytes"},
	{`"inp_ms":160`, `"inp_ms":-1`, "vitals.inp_ms"},
	{`"cls":0.0831`, `"cls":1000`, ""},
	{`"cls":0.0831`, `"cls":1000.01`, "vitals.cls"},
	{`"cls":0.0831`, `"cls":-0.0001`, "vitals.cls"},
	{`"rtt_ms":100`, `"rtt_ms":0`, ""},
	{`"rtt_ms":100`, `"rtt_ms":-25`, "conn.rtt_ms"},
	{`"dur":12.5`, `"dur":10000001`, "server_timing[0].dur"},
	{`"count":2`, `"count":1`, ""},
	{`"count":2`, `"count":0`, "hosts[0].count"},
	{`"count":2`, `"count":4294967295`, ""},
	{`"count":2`, `"count":4294967296`, "hosts[0].count"},
	{`"count":2`, `"count":-1`, "hosts[0].count"},
	{`"median_ms":50`, `"median_ms":-1`, "hosts[0].median_ms"},
	{`"bytes":10000`, `"bytes":9007199254740992`, "hosts[0].bytes"},
	{`"bytes":10000`, `"bytes":-1`, "hosts[0].bytes"},
	{`"duration_ms":30`, `"duration_ms":10000000.5`, "cdn_probes[0].cold.duration_ms"},
	{`"duration_ms":12.5`, `"duration_ms":-0.5`, "cdn_probes[0].warm.duration_ms"},
	{`"bytes":400`, `"bytes":-400`, "cdn_probes[0].cold.bytes"},
	{`"cold":{"error":true}`, `"cold":{"error":true,"status":100}`, ""},
	{`"cold":{"error":true}`, `"cold":{"error":true,"status":599}`, ""},
	{`"cold":{"error":true}`, `"cold":{"error":true,"status":99}`, "cdn_probes[1].cold.status"},
	{`"cold":{"error":true}`, `"cold":{"error":true,"status":600}`, "cdn_probes[1].cold.status"},
	{`"cold":{"error":true}`, `"cold":{"error":true,"status":99999}`, "cdn_probes[1].cold.status"},
	{`"cold":{"error":true}`, `"cold":{"error":true,"status":-1}`, "cdn_probes[1].cold.status"},
	{`"v":1`, `"v":9223372036854775808`, "v"},
}

func TestBeaconRanges(t *testing.T) {
	good := compactDocBeacon(t)
	for _, tc := range beaconBoundaries {
		name := tc.to
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(good, tc.from) {
				t.Fatalf("BEACON.md's example has no %s", tc.from)
			}
			body := strings.Replace(good, tc.from, tc.to, 1)
			b, err := server.DecodeBeacon([]byte(body))
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused a value inside its range: %v", err)
				}
				if bad := beaconOutOfRange(b); bad != "" {
					t.Fatalf("accepted but out of range: %s", bad)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "field "+tc.field+": ") {
				t.Fatalf("got %v, want an error starting %q", err, "field "+tc.field+": ")
			}
		})
	}
}

// The handler answers an out-of-range value with its 400 JSON error naming
// the field, and stores nothing.
func TestBeaconRangesHandler400(t *testing.T) {
	var stored int
	sites := fakeSites{site: store.Site{Key: "mrs_x", Origins: []string{"https://shop.example"}}}
	h := server.New(server.Config{Sites: sites, Beacons: countWrites{&stored}})
	good := compactDocBeacon(t)
	for _, tc := range []struct{ from, to, field string }{
		{`"cold":{"error":true}`, `"cold":{"error":true,"status":99999}`, "cdn_probes[1].cold.status"},
		{`"count":2`, `"count":4294967296`, "hosts[0].count"},
		{`"transfer_bytes":12345`, `"transfer_bytes":-1`, "nav.transfer_bytes"},
	} {
		r := httptest.NewRequest("POST", "/v1/beacon", strings.NewReader(strings.Replace(good, tc.from, tc.to, 1)))
		r.Header.Set("Content-Type", "text/plain")
		r.Header.Set("Origin", "https://shop.example")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var e struct{ Error, Reason string }
		json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != http.StatusBadRequest || e.Reason != "bad_beacon" || !strings.HasPrefix(e.Error, "field "+tc.field+": ") {
			t.Errorf("%s: got %d %s, want 400 bad_beacon naming %s", tc.to, w.Code, w.Body, tc.field)
		}
	}
	if stored != 0 {
		t.Errorf("stored %d beacons, want none", stored)
	}
}

type countWrites struct{ n *int }

func (c countWrites) Write(_ context.Context, rows []store.BeaconRow) error {
	*c.n += len(rows)
	return nil
}

// beaconOutOfRange says which value of an accepted beacon is outside its
// declared range ("" when none is): the fuzz property.
func beaconOutOfRange(b *store.Beacon) string {
	var bad []string
	ms := func(name string, v *float64) {
		if v != nil && !(*v >= 0 && *v <= 1e7) {
			bad = append(bad, name)
		}
	}
	n := func(name string, v *int64) {
		if v != nil && !(*v >= 0 && *v <= 1<<53-1) {
			bad = append(bad, name)
		}
	}
	if !(b.Sample > 0 && b.Sample <= 1) {
		bad = append(bad, "sample")
	}
	if nv := b.Nav; nv != nil {
		for _, v := range []*float64{nv.RedirectMs, nv.DNSMs, nv.ConnectMs, nv.TLSMs, nv.TTFBMs, nv.ResponseMs, nv.DOMInteractiveMs, nv.DOMCompleteMs, nv.LoadMs} {
			ms("nav", v)
		}
		n("nav.transfer_bytes", nv.TransferBytes)
	}
	if v := b.Vitals; v != nil {
		for _, x := range []*float64{v.FCPMs, v.LCPMs, v.INPMs, v.TTFBMs} {
			ms("vitals", x)
		}
		if v.CLS != nil && !(*v.CLS >= 0 && *v.CLS <= 1000) {
			bad = append(bad, "vitals.cls")
		}
	}
	if c := b.Conn; c != nil {
		ms("conn.rtt_ms", c.RTTMs)
	}
	for _, s := range b.ServerTiming {
		ms("server_timing.dur", s.Dur)
	}
	for _, h := range b.Hosts {
		if h.Count < 1 || h.Count > 1<<32-1 {
			bad = append(bad, "hosts.count")
		}
		ms("hosts.median_ms", h.MedianMs)
		n("hosts.bytes", h.Bytes)
	}
	for _, p := range b.CDNProbes {
		for _, f := range []*store.ProbeFetch{p.Cold, p.Warm} {
			if f == nil {
				continue
			}
			for _, v := range []*float64{f.DNSMs, f.ConnectMs, f.TLSMs, f.TTFBMs, f.DurationMs} {
				ms("cdn_probes", v)
			}
			n("cdn_probes.bytes", f.Bytes)
			if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
				bad = append(bad, "cdn_probes.status")
			}
		}
	}
	return strings.Join(bad, ", ")
}
