package store_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

func TestNormalizeOrigin(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"https://Shop.Example", "https://shop.example", ""},
		{"https://shop.example/", "https://shop.example", ""},
		{"https://shop.example:443", "https://shop.example", ""},
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000", ""},
		{"http://[::1]:80", "http://[::1]", ""},
		{"ftp://shop.example", "", "want http:// or https://"},
		{"https://shop.example/path", "", "scheme://host[:port] only"},
		{"shop.example", "", "want http:// or https://"},
	} {
		got, err := store.NormalizeOrigin(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("NormalizeOrigin(%q): got %q, %v; want %q, error containing %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestNewSiteRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		origins []string
		sample  float64
		cdns    map[string]string
		want    string
	}{
		{"a b", []string{"https://x.example"}, 1, nil, "use letters"},
		{"shop", nil, 1, nil, "at least one --origin"},
		{"shop", []string{"https://x.example"}, 1.5, nil, "outside [0, 1]"},
		{"shop", []string{"https://x.example"}, 1, map[string]string{"cf": "/probe.gif"}, "absolute http(s) URL"},
		{"shop", []string{"https://x.example"}, 1, map[string]string{"c f": "https://c.example/p.gif"}, "CDN name"},
	} {
		if _, err := store.NewSite(tc.name, tc.origins, tc.sample, false, tc.cdns); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSite(%q, %v, %v, %v): got %v, want error containing %q", tc.name, tc.origins, tc.sample, tc.cdns, err, tc.want)
		}
	}
}

func TestSites(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	s, err := store.NewSite("shop", []string{"https://shop.example/", "https://SHOP.example", "http://127.0.0.1:9000"}, 0.5, true,
		map[string]string{"cdn1": "https://p.cdn1.example/probe.gif"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.AddSite(ctx, conn, &s)
	if err != nil || !strings.HasPrefix(key, store.SiteKeyPrefix) || s.Key != key {
		t.Fatalf("AddSite: got %q, %v (s.Key %q)", key, err, s.Key)
	}
	if _, err := store.AddSite(ctx, conn, &s); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second AddSite: got %v, want already exists", err)
	}
	sites, err := store.ListSites(ctx, conn)
	if err != nil || len(sites) != 1 {
		t.Fatalf("ListSites: got %v, %v", sites, err)
	}
	got := sites[0]
	if got.Key != key || got.Sample != 0.5 || !got.RespectGPC ||
		!reflect.DeepEqual(got.Origins, []string{"https://shop.example", "http://127.0.0.1:9000"}) ||
		got.CDNs["cdn1"] != "https://p.cdn1.example/probe.gif" {
		t.Errorf("ListSites: got %+v", got)
	}

	cache := store.NewSiteCache(conn)
	if s, ok, err := cache.Lookup(ctx, key); err != nil || !ok || s.Name != "shop" {
		t.Errorf("Lookup(key): got %v %v %v", s.Name, ok, err)
	}
	if _, ok, err := cache.Lookup(ctx, "mrs_nope"); err != nil || ok {
		t.Errorf("Lookup(unknown): got %v %v, want not found", ok, err)
	}
	for origin, want := range map[string]bool{"https://shop.example": true, "https://shop.example:443": true, "http://127.0.0.1:9000": true, "https://evil.example": false, "null": false} {
		if ok, err := cache.KnownOrigin(ctx, origin); ok != want || err != nil {
			t.Errorf("KnownOrigin(%q): got %v %v, want %v", origin, ok, err, want)
		}
		if ok := got.AllowsOrigin(origin); ok != want {
			t.Errorf("AllowsOrigin(%q): got %v, want %v", origin, ok, want)
		}
	}
}

// UpdateSite replaces what a site allows and keeps its key: the new origin
// is accepted, the dropped one refused.
func TestUpdateSite(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	s, err := store.NewSite("shop", []string{"https://shop.example"}, 1, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.AddSite(ctx, conn, &s)
	if err != nil {
		t.Fatal(err)
	}
	change := func(store.Site) (store.Site, error) {
		return store.NewSite("shop", []string{"https://www.shop.example"}, 0.25, true, map[string]string{"cdn1": "https://p.cdn1.example/x.gif"})
	}
	if _, _, err := store.UpdateSite(ctx, conn, "shop", change); err != nil {
		t.Fatal(err)
	}
	sites, err := store.ListSites(ctx, conn)
	if err != nil || len(sites) != 1 {
		t.Fatalf("ListSites: got %v, %v; want the one site", sites, err)
	}
	got := sites[0]
	if got.Key != key || got.Sample != 0.25 || !got.RespectGPC || !reflect.DeepEqual(got.Origins, []string{"https://www.shop.example"}) ||
		got.CDNs["cdn1"] == "" || !got.CreatedAt.Equal(s.CreatedAt) {
		t.Errorf("after UpdateSite: got %+v, want key %s and created %v kept, the rest changed", got, key, s.CreatedAt)
	}
	if !got.AllowsOrigin("https://www.shop.example") || got.AllowsOrigin("https://shop.example") {
		t.Errorf("origins after UpdateSite: %v", got.Origins)
	}
	if _, _, err := store.UpdateSite(ctx, conn, "nope", change); err == nil || !strings.Contains(err.Error(), "no such site") {
		t.Errorf("UpdateSite(unknown): got %v, want no such site", err)
	}
}
