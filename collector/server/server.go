// Package server owns the collector's HTTP API: result ingest from agents,
// health, readiness, metrics and the beacon script.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/store"
	rumjs "github.com/meridian-net/meridian/rum-js"
)

// Agents finds the agent that owns a bearer token.
type Agents interface {
	Lookup(ctx context.Context, token string) (store.Agent, bool, error)
}

// Writer stores rows durably; it returns only once they are stored.
type Writer interface {
	Write(ctx context.Context, rows []store.Row) error
}

var (
	_ Agents = (*store.AgentCache)(nil)
	_ Writer = (*store.Writer)(nil)
)

// Config is what the server needs.
type Config struct {
	Agents Agents
	Writer Writer
	// Ready reports whether storage is reachable (for /readyz).
	Ready func(ctx context.Context) error
	// MaxBodyBytes bounds a results request on the wire (default 4 MiB);
	// MaxBatchBytes bounds it once decompressed (default 32 MiB).
	MaxBodyBytes  int64
	MaxBatchBytes int64
	// AgentRate and AgentBurst limit each agent's result batches per
	// second (defaults 20 and 40: an agent sends about one a second); past
	// them it gets 429 with Retry-After and keeps the batch in its spool.
	AgentRate  float64
	AgentBurst int
	// Limits shed overload and abuse (limits.go): bytes in flight, per
	// source and per site rates, the beacon body's read time.
	Limits Limits
	Logger *slog.Logger
	// Sites and Beacons turn on POST /v1/beacon (404 without them);
	// Enricher derives location and ASN (none: those fields stay empty).
	Sites    Sites
	Beacons  BeaconWriter
	Enricher *enrich.Enricher
	// AgentConfigs serves GET /v1/agent/config (always 404 without it);
	// Heartbeats takes POST /v1/agent/heartbeat (404 without it).
	AgentConfigs AgentConfigs
	Heartbeats   Heartbeats
	// Readers and Decisions turn on GET /v1/steering (404 without them):
	// the last published steering decisions, for steering-reader tokens.
	// SteeringPolicy adds GET /v1/steering/export (404 without it).
	Readers        Readers
	Decisions      Decisions
	SteeringPolicy Policies
}

// New returns the collector's HTTP handler.
func New(cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 32 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AgentRate <= 0 {
		cfg.AgentRate = 20
	}
	if cfg.AgentBurst <= 0 {
		cfg.AgentBurst = 40
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/results", &resultsHandler{cfg: cfg, limits: newAgentLimits(cfg.AgentRate, cfg.AgentBurst),
		inflight: newInflight("results", cfg.Limits.withDefaults().ResultsInflightBytes)})
	mux.Handle("GET /v1/agent/config", &agentConfigHandler{cfg: cfg})
	mux.Handle("POST /v1/agent/heartbeat", &heartbeatHandler{cfg: cfg})
	mux.Handle("/v1/beacon", newBeaconHandler(cfg))
	if cfg.Readers != nil && cfg.Decisions != nil {
		mux.Handle("GET /v1/steering", &steeringHandler{cfg: cfg, cacheFor: 2 * time.Second})
		mux.Handle("GET /v1/steering/export", newSteeringExportHandler(cfg))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Ready != nil {
			if err := cfg.Ready(r.Context()); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		metrics.WritePrometheus(w, true)
	})
	rum := rumjs.Handler()
	mux.Handle("GET /rum.js", rum)
	mux.Handle("GET /rum.v1.js", rum)
	return mux
}
