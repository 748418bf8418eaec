package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
)

// Readers finds the (non-agent) token a feed reader presents.
type Readers interface {
	Lookup(ctx context.Context, token string) (store.Token, bool, error)
}

// Decisions reads the last published steering decisions.
type Decisions func(ctx context.Context) (*steering.Published, error)

var _ Readers = (*store.TokenCache)(nil)

// steeringHandler serves GET /v1/steering: the last published decision of
// every pool (or ?pool=P) as a steering.Feed, to readers holding a
// steering-reader token. Every collector serves it, from ClickHouse, read
// at most once per cacheFor; the ETag is the body's hash, so routers polling
// with If-None-Match get 304 until a new decision changes the document.
type steeringHandler struct {
	cfg      Config
	cacheFor time.Duration

	mu       sync.Mutex
	loadedAt time.Time
	last     *steering.Published
}

func (h *steeringHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorize(w, r) {
		return
	}
	q, msg := strictQuery(r.URL.RawQuery, "pool")
	if msg != "" {
		reject(w, "meridian_steering_feed_rejected_total", http.StatusBadRequest, "bad_request", msg)
		return
	}
	want := q.Get("pool")
	pub, err := h.published(r.Context())
	if err != nil {
		h.cfg.Logger.Error("cannot read steering decisions", "err", err)
		w.Header().Set("Retry-After", "5")
		reject(w, "meridian_steering_feed_rejected_total", http.StatusServiceUnavailable, "storage", "cannot read the steering decisions now; retry later")
		return
	}
	feed := steering.Feed{Version: steering.FeedVersion, Pools: []*steering.Decision{}}
	names := make([]string, 0, len(pub.Decisions))
	for name := range pub.Decisions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if want == "" || want == name {
			feed.Pools = append(feed.Pools, pub.Decisions[name])
		}
	}
	if want != "" && len(feed.Pools) == 0 {
		reject(w, "meridian_steering_feed_rejected_total", http.StatusNotFound, "unknown_pool",
			"no decision for pool "+strconv.Quote(clipString(want, 64))+"; pools with decisions: "+strings.Join(names, ", "))
		return
	}
	body, err := json.Marshal(feed)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeTagged(w, r, append(body, '\n'), "application/json")
}

// strictQuery parses a query, refusing what r.URL.Query() would drop or
// pick silently: a pair it cannot parse (a ';' separator, a bad escape)
// and a repeated option of those given once.
func strictQuery(rawQuery string, once ...string) (url.Values, string) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, "cannot parse the query: " + clipString(err.Error(), 80) + " (separate options with &)"
	}
	for _, k := range once {
		if n := len(q[k]); n > 1 {
			return nil, k + " is given " + strconv.Itoa(n) + " times: give it once"
		}
	}
	return q, ""
}

// writeTagged writes body with its hash as ETag, or 304 to a reader that
// has it already, so routers polling with If-None-Match get 304 until a
// new decision changes the document.
func writeTagged(w http.ResponseWriter, r *http.Request, body []byte, contentType string) {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(body)
}

// authorize lets in steering-reader tokens only; an agent's token is
// refused by name so that a misconfigured router says what is wrong.
func (h *steeringHandler) authorize(w http.ResponseWriter, r *http.Request) bool {
	const family = "meridian_steering_feed_rejected_total"
	token, bad := bearerToken(r)
	if bad != nil {
		reject(w, family, bad.status, bad.reason, bad.msg)
		return false
	}
	if token == "" {
		reject(w, family, http.StatusUnauthorized, "no_token", "missing bearer token: send Authorization: Bearer <token from `meridian tokens add NAME --role steering-reader`>")
		return false
	}
	t, found, err := h.cfg.Readers.Lookup(r.Context(), token)
	if err != nil {
		h.cfg.Logger.Error("cannot look up reader token", "err", err)
		w.Header().Set("Retry-After", "5")
		reject(w, family, http.StatusServiceUnavailable, "storage", "cannot check the token now; retry later")
		return false
	}
	if found && t.Role == store.RoleSteeringReader {
		return true
	}
	if h.cfg.Agents != nil {
		if _, isAgent, _ := h.cfg.Agents.Lookup(r.Context(), token); isAgent {
			reject(w, family, http.StatusForbidden, "agent_token", "agent tokens cannot read the steering feed: make one with `meridian tokens add NAME --role steering-reader`")
			return false
		}
	}
	reject(w, family, http.StatusUnauthorized, "bad_token", "unknown token: make one with `meridian tokens add NAME --role steering-reader`")
	return false
}

func (h *steeringHandler) published(ctx context.Context) (*steering.Published, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last != nil && time.Since(h.loadedAt) < h.cacheFor {
		return h.last, nil
	}
	pub, err := h.cfg.Decisions(ctx)
	if err != nil {
		if h.last != nil {
			return h.last, nil // the last good copy while ClickHouse is away
		}
		return nil, err
	}
	h.last, h.loadedAt = pub, time.Now()
	return pub, nil
}
