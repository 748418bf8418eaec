package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/result"
)

var (
	resultsAccepted = metrics.NewCounter("meridian_ingest_results_total")
	batchesAccepted = metrics.NewCounter("meridian_ingest_batches_total")
	ingestDuration  = metrics.NewHistogram("meridian_ingest_duration_seconds")
)

// resultsHandler takes a batch of results from an agent: all of it is stored
// and acknowledged, or none of it is.
type resultsHandler struct {
	cfg      Config
	limits   *agentLimits
	inflight *inflight // bytes of batches read and not yet answered
}

// agentLimits keeps one token bucket per agent, so one runaway or
// misconfigured agent cannot crowd out the fleet.
type agentLimits struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex
	by    map[string]*rate.Limiter
}

func newAgentLimits(perSecond float64, burst int) *agentLimits {
	return &agentLimits{rate: rate.Limit(perSecond), burst: burst, by: map[string]*rate.Limiter{}}
}

func (l *agentLimits) allow(agent string) bool {
	l.mu.Lock()
	lim, ok := l.by[agent]
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.by[agent] = lim
	}
	l.mu.Unlock()
	return lim.Allow()
}

func (h *resultsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	agent, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	if !h.limits.allow(agent.Name) {
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusTooManyRequests, "agent_rate", "too many batches from this agent: slow down (the batch stays in the agent's spool)")
		return
	}
	if h.inflight.full() {
		busy(w, resultsRejected, "busy")
		return
	}
	tk := h.inflight.ticket()
	defer tk.release()
	results, status, err := h.decode(w, r, tk)
	if errors.Is(err, errBusy) {
		busy(w, resultsRejected, "busy")
		return
	} else if err != nil {
		fail(w, status, "bad_batch", err.Error())
		return
	}
	replay, ok := replayed(r.Header.Get(result.ReplayHeader))
	if !ok {
		fail(w, http.StatusBadRequest, "bad_batch", result.ReplayHeader+" must be 0 or 1")
		return
	}
	now := time.Now()
	rows := make([]store.Row, len(results))
	for i := range results {
		// The token says who sent the batch; a result cannot claim otherwise.
		results[i].Agent = agent.Name
		rows[i] = store.Row{Result: results[i], Region: agent.Region, ReceivedAt: now, Replay: replay}
		hopNetworks(h.cfg.Enricher, &rows[i])
	}
	if err := h.cfg.Writer.Write(r.Context(), rows); errors.Is(err, store.ErrOverloaded) {
		busy(w, resultsRejected, "queue_full")
		return
	} else if errors.Is(err, store.ErrBatchTooLarge) {
		fail(w, http.StatusRequestEntityTooLarge, "batch_too_large", err.Error())
		return
	} else if err != nil {
		h.cfg.Logger.Error("cannot store results", "agent", agent.Name, "results", len(rows), "err", err)
		// A full journal frees room as each second's segment goes into
		// ClickHouse: asking for 5 s let it drain one cap per round.
		w.Header().Set("Retry-After", retryAfter(err))
		fail(w, http.StatusServiceUnavailable, "storage", "cannot store the batch now; retry later with the same ids")
		return
	}
	resultsAccepted.Add(len(rows))
	batchesAccepted.Inc()
	ingestDuration.UpdateDuration(start)
	writeJSON(w, http.StatusOK, map[string]any{"accepted": len(rows)})
}

func retryAfter(err error) string {
	if errors.Is(err, store.ErrSpoolFull) {
		return "2"
	}
	return "5"
}

// replayed reads the agent's ReplayHeader: absent or 0 is a first post.
func replayed(v string) (replay, ok bool) {
	switch v {
	case "", "0":
		return false, true
	case "1":
		return true, true
	}
	return false, false
}

func (h *resultsHandler) authenticate(w http.ResponseWriter, r *http.Request) (store.Agent, bool) {
	token, bad := bearerToken(r)
	if bad != nil {
		fail(w, bad.status, bad.reason, bad.msg)
		return store.Agent{}, false
	}
	if token == "" {
		fail(w, http.StatusUnauthorized, "no_token", "missing bearer token: send Authorization: Bearer <agent token from `meridian agents add`>")
		return store.Agent{}, false
	}
	agent, found, err := h.cfg.Agents.Lookup(r.Context(), token)
	if err != nil {
		h.cfg.Logger.Error("cannot look up agent token", "err", err)
		w.Header().Set("Retry-After", "5")
		fail(w, http.StatusServiceUnavailable, "storage", "cannot check the token now; retry later")
		return store.Agent{}, false
	}
	if !found {
		fail(w, http.StatusUnauthorized, "bad_token", "unknown agent token: check MERIDIAN_TOKEN against `meridian agents add`")
		return store.Agent{}, false
	}
	return agent, true
}

// decode reads the whole body, gunzipping if needed, within the size limits
// and charging what it reads to tk, and decodes it strictly. It returns the
// HTTP status to use on error.
func (h *resultsHandler) decode(w http.ResponseWriter, r *http.Request, tk *ticket) ([]result.Result, int, error) {
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	var in io.Reader = body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, statusFor(err), fmt.Errorf("cannot read gzip body: %w", err)
		}
		defer zr.Close()
		in = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q: send gzip or nothing", enc)
	}
	// Read one byte past the limit to tell "exactly at" from "over" (gzip bombs stop here).
	raw, err := io.ReadAll(io.LimitReader(tk.reader(in), h.cfg.MaxBatchBytes+1))
	if err != nil {
		return nil, statusFor(err), fmt.Errorf("cannot read body: %w", err)
	}
	if int64(len(raw)) > h.cfg.MaxBatchBytes {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("batch larger than %d bytes decompressed: send smaller batches", h.cfg.MaxBatchBytes)
	}
	results, err := result.DecodeNDJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if len(results) == 0 {
		return nil, http.StatusBadRequest, errors.New("empty batch: send one result per line")
	}
	return results, 0, nil
}

func statusFor(err error) int {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// fail answers with a JSON error that names the reason; agents log it.
func fail(w http.ResponseWriter, status int, reason, msg string) {
	reject(w, "meridian_ingest_rejected_total", status, reason, msg)
}

// reject answers with a JSON error naming the reason and counts it in the
// metric family, by reason.
func reject(w http.ResponseWriter, family string, status int, reason, msg string) {
	metrics.GetOrCreateCounter(family + `{reason="` + reason + `"}`).Inc()
	writeJSON(w, status, map[string]string{"error": msg, "reason": reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
