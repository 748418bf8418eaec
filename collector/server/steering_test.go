package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
)

type fakeReaders map[string]store.Token

func (f fakeReaders) Lookup(_ context.Context, token string) (store.Token, bool, error) {
	t, ok := f[token]
	return t, ok, nil
}

type fakeAgents map[string]store.Agent

func (f fakeAgents) Lookup(_ context.Context, token string) (store.Agent, bool, error) {
	a, ok := f[token]
	return a, ok, nil
}

func TestSteeringFeed(t *testing.T) {
	reads := 0
	d := &steering.Decision{Pool: "www", DNSName: "www.shop.example.", TTL: 30, ComputedAt: time.Unix(1e9, 0).UTC(),
		Scopes: []steering.ScopeDecision{{Scope: "global", Rule: steering.RuleScore, Members: []steering.MemberDecision{
			{Name: "cdn-a", Weight: 70, State: steering.StateUp}, {Name: "cdn-b", Weight: 30, State: steering.StateUp}}}}}
	h := New(Config{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Agents:  fakeAgents{"agent-token": {Name: "a"}},
		Readers: fakeReaders{"reader": {Name: "pdns", Role: store.RoleSteeringReader}},
		Decisions: func(context.Context) (*steering.Published, error) {
			reads++
			return &steering.Published{Decisions: map[string]*steering.Decision{"www": d}}, nil
		},
	})
	get := func(token, query, etag string) *http.Response {
		req := httptest.NewRequest("GET", "/v1/steering"+query, nil)
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
	}{
		{"", "", 401}, {"nope", "", 401}, {"agent-token", "", 403}, {"reader", "?pool=api", 404}, {"reader", "", 200}, {"reader", "?pool=www", 200},
	} {
		if got := get(c.token, c.query, "").StatusCode; got != c.want {
			t.Errorf("token %q query %q: got %d, want %d", c.token, c.query, got, c.want)
		}
	}
	resp := get("reader", "", "")
	var feed steering.Feed
	if err := json.NewDecoder(resp.Body).Decode(&feed); err != nil || feed.Version != 1 || len(feed.Pools) != 1 || feed.Pools[0].Scopes[0].Members[1].Weight != 30 {
		t.Errorf("got feed %+v (%v)", feed, err)
	}
	etag := resp.Header.Get("ETag")
	if got := get("reader", "", etag).StatusCode; etag == "" || got != http.StatusNotModified {
		t.Errorf("If-None-Match %q: got %d, want 304", etag, got)
	}
	if reads != 1 {
		t.Errorf("read the decisions %d times for 8 requests within 2 s, want once (cached)", reads)
	}
}
