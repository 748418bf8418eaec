package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/store"
)

// Sites finds RUM sites by key, and tells whether an origin is registered
// for any site (a CORS preflight carries no site key).
type Sites interface {
	Lookup(ctx context.Context, key string) (store.Site, bool, error)
	KnownOrigin(ctx context.Context, origin string) (bool, error)
}

// BeaconWriter stores beacons durably; it returns only once they are stored.
type BeaconWriter interface {
	Write(ctx context.Context, rows []store.BeaconRow) error
}

var (
	_ Sites        = (*store.SiteCache)(nil)
	_ BeaconWriter = (*store.BeaconWriter)(nil)
)

// MaxBeaconBytes bounds a beacon body (rum-js/BEACON.md keeps far below).
const MaxBeaconBytes = 64 << 10

var (
	beaconsAccepted = metrics.NewCounter("meridian_beacons_total")
	beaconBots      = metrics.NewCounter("meridian_beacon_bots_total")
	beaconGPC       = metrics.NewCounter("meridian_beacon_gpc_dropped_total")
	beaconDuration  = metrics.NewHistogram("meridian_beacon_duration_seconds")
)

// beaconHandler takes one page view from a browser: it validates, enriches,
// drops the client address, and hands the row to the batched writer.
type beaconHandler struct {
	sites    Sites
	writer   BeaconWriter
	enricher *enrich.Enricher
	now      func() time.Time
	limits   *beaconLimits
}

func newBeaconHandler(cfg Config) http.Handler {
	if cfg.Sites == nil || cfg.Beacons == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "beacons are not enabled on this collector", http.StatusNotFound)
		})
	}
	e := cfg.Enricher
	if e == nil {
		e = &enrich.Enricher{}
	}
	return &beaconHandler{sites: cfg.Sites, writer: cfg.Beacons, enricher: e, now: time.Now, limits: newBeaconLimits(cfg.Limits, cfg.Sites)}
}

func (h *beaconHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodOptions:
		h.preflight(w, r)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		beaconFail(w, http.StatusMethodNotAllowed, "method", "method not allowed: POST the beacon")
	}
}

// readBody reads a body in one allocation when its length is declared
// (io.ReadAll grows from 512 bytes: three allocations for a typical
// beacon). net/http ends the body at the declared length and fails a
// shorter one. Past preallocBytes it grows as the body arrives, so a
// client declaring 64 KiB and dribbling it does not cost 64 KiB at once.
func readBody(body io.Reader, length int64) ([]byte, error) {
	return readBodyInto(nil, body, length)
}

const preallocBytes = 16 << 10

// readBodyInto is readBody into buf when it is large enough.
func readBodyInto(buf []byte, body io.Reader, length int64) ([]byte, error) {
	if length <= 0 || length > preallocBytes {
		return io.ReadAll(body)
	}
	if int64(cap(buf)) < length {
		buf = make([]byte, length)
	}
	buf = buf[:length]
	_, err := io.ReadFull(body, buf)
	return buf, err
}

// bodies recycles beacon bodies that the writer has copied (the journal
// clears BeaconRow.Raw once the body is in its line, and the beacon owns
// its strings): a body was a fifth of a beacon's allocations.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// recycle hands a body back once nothing holds it.
func recycle(buf *[]byte, raw []byte) {
	if cap(raw) <= preallocBytes {
		*buf = raw[:0]
		bodies.Put(buf)
	}
}

func (h *beaconHandler) post(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	client := h.enricher.ClientIP(r)
	if !h.limits.early(w, client) {
		return
	}
	if status, reason, err := checkBeaconHeaders(r); err != nil {
		beaconFail(w, status, reason, err.Error())
		return
	}
	buf := bodies.Get().(*[]byte)
	raw, err := readBodyInto(*buf, http.MaxBytesReader(w, r.Body, MaxBeaconBytes), r.ContentLength)
	if err != nil {
		bodyFail(w, err)
		return
	}
	tk, ok := h.limits.admit(r.Context(), w, raw)
	if !ok {
		return
	}
	defer tk.release()
	// The row is made first and the beacon decoded into it: the writer
	// keeps it queued for ClickHouse.
	rows := make([]store.BeaconRow, 1)
	row := &rows[0]
	b := &row.Beacon
	if err := checkBeacon(b, store.UnmarshalBeacon(raw, b)); err != nil {
		beaconFail(w, http.StatusBadRequest, "bad_beacon", err.Error())
		return
	}
	site, found, err := h.sites.Lookup(r.Context(), b.Site)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		beaconFail(w, http.StatusServiceUnavailable, "storage", "cannot check the site key now; retry later")
		return
	}
	if !found {
		beaconFail(w, http.StatusBadRequest, "unknown_site", "unknown site key: check data-site against `meridian sites list`")
		return
	}
	origin := r.Header.Get("Origin")
	if !site.AllowsOrigin(origin) {
		beaconFail(w, http.StatusForbidden, "origin", fmt.Sprintf("origin %q is not registered for this site (`meridian sites list` shows its origins)", origin))
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if site.RespectGPC && r.Header.Get("Sec-GPC") == "1" {
		beaconGPC.Inc()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	row.Visitor, row.ReceivedAt, row.Raw = h.visitor(client, r, b), h.now(), raw
	if row.Bot {
		beaconBots.Inc()
	}
	err = h.writer.Write(r.Context(), rows)
	if row.Raw == nil { // copied: the body is free again
		recycle(buf, raw)
	}
	if errors.Is(err, store.ErrOverloaded) {
		busy(w, beaconRejected, "queue_full")
		return
	} else if err != nil {
		w.Header().Set("Retry-After", "5")
		beaconFail(w, http.StatusServiceUnavailable, "storage", "cannot store the beacon now; retry later")
		return
	}
	beaconsAccepted.Inc()
	beaconDuration.UpdateDuration(start)
	w.WriteHeader(http.StatusNoContent)
}

// bodyFail answers a body that could not be read.
func bodyFail(w http.ResponseWriter, err error) {
	if status := statusFor(err); status == http.StatusRequestEntityTooLarge {
		beaconFail(w, status, "too_large", fmt.Sprintf("beacon larger than %d bytes", MaxBeaconBytes))
	} else if errors.Is(err, os.ErrDeadlineExceeded) { // Limits.BeaconReadTimeout
		beaconFail(w, http.StatusRequestTimeout, "slow_body", "the beacon's body took too long to arrive")
	} else {
		beaconFail(w, status, "bad_body", "cannot read body: "+err.Error())
	}
}

// visitor derives what is kept of the request's sender. The client address
// is used here and by the rate limits (as a hash): it is never put in the row.
func (h *beaconHandler) visitor(client netip.Addr, r *http.Request, b *store.Beacon) store.Visitor {
	loc := h.enricher.Locate(client)
	ua := enrich.ParseUA(r.UserAgent())
	v := store.Visitor{
		Country: loc.Country, Region: loc.Region, City: loc.City, ASN: loc.ASN, ASOrg: loc.ASOrg,
		Browser: ua.Browser, BrowserVersion: ua.Version, OS: ua.OS, Device: ua.Device,
		Bot: ua.Bot || b.Webdriver,
	}
	if v.Bot {
		v.Device = "bot"
	}
	return v
}

// preflight answers a CORS preflight (a beacon sent as application/json
// needs one) for origins registered for some site, and refuses the rest.
func (h *beaconHandler) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	known, err := h.sites.KnownOrigin(r.Context(), origin)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		beaconFail(w, http.StatusServiceUnavailable, "storage", "cannot check the origin now; retry later")
		return
	}
	if !known {
		beaconFail(w, http.StatusForbidden, "origin", fmt.Sprintf("origin %q is not registered for any site", origin))
		return
	}
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Set("Access-Control-Allow-Methods", "POST")
	hd.Set("Access-Control-Allow-Headers", "Content-Type")
	hd.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

func checkBeaconHeaders(r *http.Request) (status int, reason string, err error) {
	ct := r.Header.Get("Content-Type")
	mt, perr := mediaType(ct)
	if perr != nil || (mt != "text/plain" && mt != "application/json") {
		return http.StatusUnsupportedMediaType, "content_type",
			fmt.Errorf("unsupported Content-Type %q: send the beacon as text/plain (or application/json)", ct)
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return http.StatusUnsupportedMediaType, "content_encoding",
			fmt.Errorf("unsupported Content-Encoding %q: send the beacon uncompressed", enc)
	}
	// Browser, version and OS are cut from the User-Agent and stored:
	// strings are stored as valid UTF-8 or refused, never mangled.
	if !utf8.ValidString(r.UserAgent()) {
		return http.StatusBadRequest, "user_agent", errors.New("the User-Agent header is not valid UTF-8")
	}
	return 0, "", nil
}

// mediaType is ct's media type. What sendBeacon sends skips the parser,
// which allocates its parameters' map on every beacon.
func mediaType(ct string) (string, error) {
	if ct == "text/plain;charset=UTF-8" || ct == "text/plain" {
		return "text/plain", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	return mt, err
}

func beaconFail(w http.ResponseWriter, status int, reason, msg string) {
	reject(w, "meridian_beacon_rejected_total", status, reason, msg)
}

// DecodeBeacon decodes one beacon strictly (rum-js/BEACON.md, format v1):
// one JSON object, no unknown or repeated keys, valid UTF-8, every value in
// range. Its errors name the field at fault. This is the collector's
// hottest path: store.UnmarshalBeacon scans the JSON straight into the
// Beacon and leaves anything unusual, errors included, to
// go-json-experiment/json (the encoding/json/v2 proposal, strict by
// design), whose errors jsonError words.
func DecodeBeacon(raw []byte) (*store.Beacon, error) {
	var b store.Beacon
	if err := checkBeacon(&b, store.UnmarshalBeacon(raw, &b)); err != nil {
		return nil, err
	}
	return &b, nil
}

// checkBeacon words a decoding error, or validates what was decoded.
func checkBeacon(b *store.Beacon, decodeErr error) error {
	if decodeErr != nil {
		return jsonError(decodeErr)
	}
	return validateBeacon(b)
}

func jsonError(err error) error {
	var se *json.SemanticError
	if errors.As(err, &se) {
		switch {
		case errors.Is(se.Err, json.ErrUnknownName):
			return fmt.Errorf("unknown field %q (not in beacon format v1)", fieldPath(se.JSONPointer))
		case se.JSONPointer == "":
			return fmt.Errorf("invalid beacon: want a JSON object, got %s", kindName(se.JSONKind))
		case se.GoType != nil:
			got := kindName(se.JSONKind)
			if len(se.JSONValue) > 0 && len(se.JSONValue) <= 40 {
				got += " " + string(se.JSONValue)
			}
			return fmt.Errorf("field %s: want %s, got %s", fieldPath(se.JSONPointer), jsonKind(se.GoType.Kind().String()), got)
		}
		return fmt.Errorf("field %s: %v", fieldPath(se.JSONPointer), se.Err)
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		switch {
		case errors.Is(syn.Err, io.ErrUnexpectedEOF) && syn.ByteOffset == 0:
			return errors.New("empty or truncated beacon: send one JSON object")
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return fmt.Errorf("truncated beacon: it ends at byte %d inside a value", syn.ByteOffset)
		case strings.Contains(syn.Err.Error(), "after top-level value"):
			return errors.New("trailing data after the beacon object: send exactly one JSON object")
		}
		return fmt.Errorf("invalid JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	}
	return fmt.Errorf("invalid beacon: %v", err)
}

// fieldPath writes a JSON pointer ("/hosts/0/count") as the validation
// errors name fields ("hosts[0].count").
func fieldPath(p jsontext.Pointer) string {
	var sb strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && sb.Len() > 0 {
			sb.WriteString("[" + tok + "]")
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok)
	}
	return sb.String()
}

// kindName names a JSON kind as the errors do.
func kindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a value of another type"
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "an integer"
	case strings.HasPrefix(k, "float"):
		return "a number"
	case k == "slice":
		return "an array"
	case k == "struct":
		return "an object"
	case k == "ptr":
		return "a value of another type"
	}
	return "a " + k
}
