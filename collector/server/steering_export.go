package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/steering/export"
)

// Policies reads the current steering policy: exports need the members'
// addresses and the regions' countries, which decisions do not carry.
type Policies func(ctx context.Context) (*steering.Policy, error)

// steeringExportHandler serves GET /v1/steering/export?pool=P&format=F
// (&scope=S&backend=B&server=MEMBER=SERVER&hosted_zone_id=Z): one pool's
// last published decision rendered by collector/steering/export, to the
// readers GET /v1/steering lets in, with the same ETag handling.
type steeringExportHandler struct {
	feed *steeringHandler // authorization and the cached decisions

	mu       sync.Mutex
	loadedAt time.Time
	policy   *steering.Policy
}

func newSteeringExportHandler(cfg Config) *steeringExportHandler {
	return &steeringExportHandler{feed: &steeringHandler{cfg: cfg, cacheFor: 2 * time.Second}}
}

const exportRejected = "meridian_steering_export_rejected_total"

func (h *steeringExportHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := h.feed.cfg
	if cfg.SteeringPolicy == nil {
		reject(w, exportRejected, http.StatusNotFound, "off", "steering export is off on this collector: it was started without the steering policy")
		return
	}
	if !h.feed.authorize(w, r) {
		return
	}
	q, bad := strictQuery(r.URL.RawQuery, "pool", "format", "scope", "backend", "hosted_zone_id")
	if bad != "" {
		reject(w, exportRejected, http.StatusBadRequest, "bad_request", bad)
		return
	}
	name, format := q.Get("pool"), q.Get("format")
	if format == "" {
		format = "json"
	}
	opts, msg := exportOptions(q.Get("scope"), q.Get("backend"), q.Get("hosted_zone_id"), q["server"])
	switch {
	case name == "":
		msg = "give the pool: ?pool=P&format=F"
	case !export.Known(format):
		msg = "unknown format " + strconv.Quote(clipString(format, 40)) + ": use one of " + strings.Join(export.Formats, ", ")
	}
	if msg != "" {
		reject(w, exportRejected, http.StatusBadRequest, "bad_request", msg)
		return
	}
	d, pool, regions, status, msg := h.load(r.Context(), name)
	if status != 0 {
		reason := "unknown_pool"
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
			reason = "storage"
		}
		reject(w, exportRejected, status, reason, msg)
		return
	}
	body, err := export.Render(format, d, pool, regions, opts)
	var oe *export.OptionError
	switch {
	case errors.As(err, &oe):
		reject(w, exportRejected, http.StatusBadRequest, "bad_option", clipString(err.Error(), 512))
		return
	case err != nil:
		cfg.Logger.Error("cannot export a steering decision", "pool", name, "format", format, "err", err)
		reject(w, exportRejected, http.StatusInternalServerError, "render", err.Error())
		return
	}
	writeTagged(w, r, body, export.ContentType(format))
}

// exportOptions reads the query's options, or says what is wrong.
func exportOptions(scope, backend, zone string, servers []string) (export.Options, string) {
	opts := export.Options{Scope: scope, Backend: backend, HostedZoneID: zone}
	if zone != "" && !hostedZoneID(zone) {
		return opts, "hosted_zone_id " + strconv.Quote(clipString(zone, 40)) + " must be a Route 53 hosted zone id: 1 to 32 letters and digits, such as Z1D633PJN98FT9"
	}
	for _, kv := range servers {
		member, server, ok := strings.Cut(kv, "=")
		if !ok || member == "" || server == "" {
			return opts, "server=" + strconv.Quote(clipString(kv, 80)) + " must be MEMBER=SERVER, such as server=cdn-a=cdn_a_1"
		}
		if _, again := opts.Servers[member]; again {
			return opts, "server= names member " + strconv.Quote(clipString(member, 40)) + " twice: give each member one server"
		}
		if opts.Servers == nil {
			opts.Servers = map[string]string{}
		}
		opts.Servers[member] = server
	}
	return opts, ""
}

// hostedZoneID tells whether s can be a Route 53 hosted zone id; it goes
// into the change batch as is.
func hostedZoneID(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// load finds pool name's decision and policy, or an HTTP status and why.
func (h *steeringExportHandler) load(ctx context.Context, name string) (*steering.Decision, *steering.Pool, map[string][]string, int, string) {
	pub, err := h.feed.published(ctx)
	if err != nil {
		h.feed.cfg.Logger.Error("cannot read steering decisions", "err", err)
		return nil, nil, nil, http.StatusServiceUnavailable, "cannot read the steering decisions now; retry later"
	}
	d := pub.Decisions[name]
	if d == nil {
		names := make([]string, 0, len(pub.Decisions))
		for n := range pub.Decisions {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, nil, nil, http.StatusNotFound, "no decision for pool " + strconv.Quote(clipString(name, 64)) + "; pools with decisions: " + strings.Join(names, ", ")
	}
	pol, err := h.currentPolicy(ctx)
	if err != nil {
		h.feed.cfg.Logger.Error("cannot read the steering policy", "err", err)
		return nil, nil, nil, http.StatusServiceUnavailable, "cannot read the steering policy now; retry later"
	}
	pool, ok := pol.Pool(name)
	if !ok {
		return nil, nil, nil, http.StatusNotFound, "pool " + name + " is no longer in the steering policy"
	}
	return d, pool, pol.Regions, 0, ""
}

// currentPolicy is the policy read at most once per the feed's cacheFor,
// or the last good copy while ClickHouse is away.
func (h *steeringExportHandler) currentPolicy(ctx context.Context) (*steering.Policy, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.policy != nil && time.Since(h.loadedAt) < h.feed.cacheFor {
		return h.policy, nil
	}
	p, err := h.feed.cfg.SteeringPolicy(ctx)
	if err != nil {
		if h.policy != nil {
			return h.policy, nil
		}
		return nil, err
	}
	h.policy, h.loadedAt = p, time.Now()
	return p, nil
}
