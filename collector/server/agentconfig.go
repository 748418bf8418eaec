package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/meridian-net/meridian/collector/store"
)

// AgentConfigs finds an agent's remote checks document.
type AgentConfigs interface {
	AgentConfig(ctx context.Context, agent string) (store.AgentConfig, bool, error)
}

// Heartbeats takes agents' heartbeats; false means one was dropped.
type Heartbeats interface {
	Add(hb store.Heartbeat) bool
}

var (
	_ AgentConfigs = (*store.AgentConfigCache)(nil)
	_ Heartbeats   = (*store.HeartbeatWriter)(nil)
)

// agentConfigHandler serves GET /v1/agent/config: the calling agent's
// remote checks document (YAML with one key, checks:), with a strong ETag
// (the SHA-256 of the document) so a poll that finds nothing new is a 304.
// 404 means no remote config is set: the agent runs its file's checks only.
type agentConfigHandler struct{ cfg Config }

func (h *agentConfigHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	agent, ok := (&resultsHandler{cfg: h.cfg}).authenticate(w, r)
	if !ok {
		return
	}
	var ac store.AgentConfig
	found := false
	if h.cfg.AgentConfigs != nil {
		var err error
		ac, found, err = h.cfg.AgentConfigs.AgentConfig(r.Context(), agent.Name)
		if err != nil {
			h.cfg.Logger.Error("cannot read agent config", "agent", agent.Name, "err", err)
			w.Header().Set("Retry-After", "5")
			fail(w, http.StatusServiceUnavailable, "storage", "cannot read the config now; retry later")
			return
		}
	}
	w.Header().Set("Cache-Control", "no-cache")
	if !found {
		fail(w, http.StatusNotFound, "no_config", "no remote config for agent "+agent.Name+": set one with `meridian agents config set "+agent.Name+" --file checks.yml`")
		return
	}
	sum := sha256.Sum256([]byte(ac.YAML))
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("X-Meridian-Config-Version", strconv.FormatUint(ac.Version, 10))
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Last-Modified", ac.UpdatedAt.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Length", strconv.Itoa(len(ac.YAML)))
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ac.YAML)
}

// etagMatch applies If-None-Match's weak comparison (RFC 9110 13.1.2).
func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// HeartbeatRequest is what an agent POSTs to /v1/agent/heartbeat.
type HeartbeatRequest struct {
	Version       string `json:"version"`
	UptimeS       uint64 `json:"uptime_s"`
	SpoolResults  uint64 `json:"spool_results"`
	SpoolBytes    uint64 `json:"spool_bytes"`
	LastError     string `json:"last_error"`
	ConfigVersion uint64 `json:"config_version"`
	Checks        uint32 `json:"checks"`
}

// maxHeartbeatBytes bounds a heartbeat body; maxLastError the error kept.
const (
	maxHeartbeatBytes = 64 << 10
	maxLastError      = 1024
	maxVersion        = 128
)

// heartbeatHandler takes POST /v1/agent/heartbeat and answers 204 once
// the heartbeat is queued (heartbeats are advisory: written within a
// second, dropped rather than slowing anyone down when ClickHouse is away).
type heartbeatHandler struct{ cfg Config }

func (h *heartbeatHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	agent, ok := (&resultsHandler{cfg: h.cfg}).authenticate(w, r)
	if !ok {
		return
	}
	if h.cfg.Heartbeats == nil {
		fail(w, http.StatusNotFound, "no_heartbeats", "this collector does not store heartbeats")
		return
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		fail(w, http.StatusUnsupportedMediaType, "bad_heartbeat", "unsupported Content-Encoding "+strconv.Quote(clipString(enc, 40))+": send the heartbeat uncompressed")
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHeartbeatBytes))
	if err != nil {
		fail(w, statusFor(err), "bad_heartbeat", "cannot read the heartbeat: "+err.Error())
		return
	}
	hb, err := decodeHeartbeat(raw)
	if err != nil {
		fail(w, http.StatusBadRequest, "bad_heartbeat", "cannot decode the heartbeat: "+err.Error())
		return
	}
	if !h.cfg.Heartbeats.Add(store.Heartbeat{
		Agent: agent.Name, TS: time.Now(), Version: truncate(hb.Version, maxVersion), UptimeS: hb.UptimeS,
		SpoolResults: hb.SpoolResults, SpoolBytes: hb.SpoolBytes, LastError: truncate(hb.LastError, maxLastError),
		ConfigVersion: hb.ConfigVersion, Checks: hb.Checks,
	}) {
		w.Header().Set("Retry-After", "30")
		fail(w, http.StatusServiceUnavailable, "storage", "cannot queue the heartbeat now")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeHeartbeat decodes one JSON object, strictly but for unknown keys
// (newer agents may say more): a repeated key, invalid UTF-8 (raw or a
// lone surrogate escape), a case-folded key and anything after the object
// are refused, where encoding/json would keep the last copy, store U+FFFD,
// match "VERSION" to version and ignore the rest.
func decodeHeartbeat(raw []byte) (HeartbeatRequest, error) {
	var hb HeartbeatRequest
	if jsontext.Value(raw).Kind() != '{' {
		return hb, errors.New("want one JSON object")
	}
	if err := json.Unmarshal(raw, &hb); err != nil {
		return hb, errors.New(clipString(err.Error(), 300))
	}
	return hb, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") // drops a UTF-8 sequence cut in two
}
