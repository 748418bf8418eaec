package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/steering/export"
	"github.com/meridian-net/meridian/collector/store"
)

func TestSteeringExport(t *testing.T) {
	d := &steering.Decision{Pool: "www", DNSName: "www.shop.example.", TTL: 30, ComputedAt: time.Unix(1e9, 0).UTC(),
		Scopes: []steering.ScopeDecision{
			{Scope: "global", Rule: steering.RuleScore, Members: []steering.MemberDecision{
				{Name: "cdn-a", Weight: 70, State: steering.StateUp}, {Name: "cdn-b", Weight: 30, State: steering.StateUp}}},
			{Scope: "country:BR", Rule: steering.RuleScore, Members: []steering.MemberDecision{
				{Name: "cdn-a", Weight: 100, State: steering.StateUp}, {Name: "cdn-b", Weight: 0, State: steering.StateDown}}},
		}}
	policy := &steering.Policy{Pools: []steering.Pool{{Name: "www", DNSName: "www.shop.example.", TTL: 30, Members: []steering.Member{
		{Name: "cdn-a", Addresses: []string{"192.0.2.10"}}, {Name: "cdn-b", Addresses: []string{"192.0.2.20"}}}}}}
	policyReads, policyErr := 0, error(nil)
	cfg := Config{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Agents:  fakeAgents{"agent-token": {Name: "a"}},
		Readers: fakeReaders{"reader": {Name: "pdns", Role: store.RoleSteeringReader}},
		Decisions: func(context.Context) (*steering.Published, error) {
			return &steering.Published{Decisions: map[string]*steering.Decision{"www": d}}, nil
		},
		SteeringPolicy: func(context.Context) (*steering.Policy, error) { policyReads++; return policy, policyErr },
	}
	h := New(cfg)
	get := func(h http.Handler, token, query, etag string) *http.Response {
		req := httptest.NewRequest("GET", "/v1/steering/export"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Result()
	}
	for _, c := range []struct {
		token, query string
		want         int
		body         string
	}{
		{"", "?pool=www&format=haproxy", 401, "steering-reader"},
		{"agent-token", "?pool=www&format=haproxy", 403, "agent tokens"},
		{"reader", "?pool=api&format=haproxy", 404, "www"},
		{"reader", "?pool=www&format=yaml", 400, strings.Join(export.Formats, ", ")},
		{"reader", "?format=json", 400, "pool"},
		{"reader", "?pool=www&format=route53", 400, "hosted"},
		{"reader", "?pool=www&format=haproxy&scope=country:DE", 400, "country:BR"},
		{"reader", "?pool=www&format=haproxy&server=cdn-a", 400, "MEMBER=SERVER"},
		{"reader", "?pool=www&format=haproxy&scope=country:BR&backend=be&server=cdn-b=b1", 200, "set server be/b1 state maint\n"},
		{"reader", "?pool=www&format=route53&hosted_zone_id=Z1", 200, `"HostedZoneId": "Z1"`},
		{"reader", "?pool=www", 200, `"version": 1`},
	} {
		resp := get(h, c.token, c.query, "")
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.want || !strings.Contains(string(b), c.body) {
			t.Errorf("token %q query %q: got %d %s; want %d containing %q", c.token, c.query, resp.StatusCode, b, c.want, c.body)
		}
	}

	for format, ctype := range map[string]string{"pdns-lua": "text/plain", "haproxy": "text/plain", "pdns-api": "application/json", "ns1": "application/json", "cloudflare": "application/json", "json": "application/json", "csv": "text/csv"} {
		resp := get(h, "reader", "?pool=www&format="+format, "")
		got, _ := io.ReadAll(resp.Body)
		want, err := export.Render(format, d, &policy.Pools[0], policy.Regions, export.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || string(got) != string(want) {
			t.Errorf("format %s: got %d %q\n%s\nwant 200 %s with what export.Render gives:\n%s", format, resp.StatusCode, resp.Header.Get("Content-Type"), got, ctype, want)
		}
		if etag := resp.Header.Get("ETag"); get(h, "reader", "?pool=www&format="+format, etag).StatusCode != http.StatusNotModified {
			t.Errorf("format %s: If-None-Match %s did not give 304", format, etag)
		}
	}
	if policyReads != 1 {
		t.Errorf("read the policy %d times within 2 s, want once (cached)", policyReads)
	}

	// A collector started without the policy has no export; a new one whose
	// policy read fails answers 503.
	cfg.SteeringPolicy = nil
	if got := get(New(cfg), "reader", "?pool=www&format=json", "").StatusCode; got != http.StatusNotFound {
		t.Errorf("without SteeringPolicy: got %d, want 404", got)
	}
	policyErr = errors.New("clickhouse away")
	cfg.SteeringPolicy = func(context.Context) (*steering.Policy, error) { return nil, policyErr }
	resp := get(New(cfg), "reader", "?pool=www&format=json", "")
	var e map[string]string
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(e["error"], "policy") {
		t.Errorf("policy unreadable: got %d %v, want 503 with Retry-After", resp.StatusCode, e)
	}
}
