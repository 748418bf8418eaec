package steering

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
)

// DNSRecord is one record a DNS router is sent: for PowerDNS a LUA record
// such as {www.shop.example. LUA 30 `A ";if country('BR') then … end"`}.
// export.PDNSRecord has the same fields, so one converts to the other.
type DNSRecord struct {
	Name, Type string
	TTL        int
	Content    string
}

// Renderers turn a decision into what each kind of router is sent. Package
// export implements them; steering cannot import it (export imports
// steering), so whoever builds the Pusher hands them in.
type Renderers struct {
	HAProxy func(d *Decision, scope, backend string, servers map[string]string) ([]string, error)
	PDNS    func(d *Decision, pool *Pool, regions map[string][]string) ([]DNSRecord, error)
}

// Pusher sends published decisions to the routers a pool lists. A push
// that fails is logged, recorded in steering_pushes, counted in
// meridian_steering_push_total and tried again: at once after Backoff
// (Attempts tries in all), then at later steps after a wait that doubles
// from RetryAfter up to 5 minutes. It never changes a decision: routers
// that cannot be reached keep what they had, the feed the new weights.
type Pusher struct {
	Conn       driver.Conn // where pushes are recorded; nil records nothing
	Render     Renderers
	Logf       func(format string, args ...any)
	Getenv     func(string) string // os.Getenv when nil; reads api_key_env
	HTTP       *http.Client        // a client with Timeout when nil
	Timeout    time.Duration       // one try's limit; 5s when 0
	Attempts   int                 // tries in one push; 2 when 0
	Backoff    time.Duration       // wait between those tries; 200ms when 0
	RetryAfter time.Duration       // first wait, in later steps, after a failed push; 10s when 0
	// Resync re-sends unchanged weights this often, since a restarted
	// HAProxy forgets runtime weights; 5 minutes when 0.
	Resync time.Duration

	mu    sync.Mutex
	state map[string]*routerState // by pool + "/" + router
}

type routerState struct {
	sent     [32]byte // hash of what the last good push sent
	okAt     time.Time
	failures int
	nextTry  time.Time
}

// PushResult is one push to one router, as steering_pushes records it.
type PushResult struct {
	At       time.Time
	Decision uint64 // the decision's ComputedAt in Unix nanoseconds, as in steering_history
	Pool     string
	Router   string
	Kind     string
	Target   string
	OK       bool
	Attempts int
	Error    string
	Sent     string // what was sent, cut to maxSent bytes
}

const maxSent = 8 << 10

// Push sends d to every router of pool now, whatever was sent before, and
// records each push. The error joins those of the routers that failed.
func (p *Pusher) Push(ctx context.Context, d *Decision, pool *Pool, regions map[string][]string) ([]PushResult, error) {
	return p.push(ctx, time.Now(), d, pool, regions, true)
}

// Sync is Push for the runner's steps: it sends d only to the routers
// whose payload changed since their last good push, that were last pushed
// Resync ago, or whose last push failed and whose wait is over.
func (p *Pusher) Sync(ctx context.Context, now time.Time, d *Decision, pool *Pool, regions map[string][]string) ([]PushResult, error) {
	return p.push(ctx, now, d, pool, regions, false)
}

func (p *Pusher) push(ctx context.Context, now time.Time, d *Decision, pool *Pool, regions map[string][]string, force bool) ([]PushResult, error) {
	var out []PushResult
	var errs []error
	for _, r := range pool.Routers {
		pl, err := p.prepare(d, pool, regions, r)
		key := pool.Name + "/" + r.Name
		if !force && !p.due(key, now, pl.hash) {
			continue
		}
		res := PushResult{At: now, Decision: uint64(d.ComputedAt.UnixNano()), Pool: pool.Name, Router: r.Name, Kind: r.Kind, Target: r.Target()}
		if err == nil {
			res.Sent = cut(pl.summary, maxSent)
			res.Attempts, err = p.try(ctx, pl.send)
		}
		res.OK = err == nil
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, fmt.Errorf("cannot push pool %s to router %s (%s %s): %w", pool.Name, r.Name, r.Kind, r.Target(), err))
		}
		p.done(key, now, pl.hash, res.OK)
		p.count(res)
		if err := p.record(ctx, res); err != nil {
			errs = append(errs, err)
		}
		out = append(out, res)
	}
	err := errors.Join(errs...)
	if err != nil {
		p.logf("steering: %v", err)
	}
	return out, err
}

// payload is what one router is sent, ready to send.
type payload struct {
	summary string
	hash    [32]byte
	send    func(ctx context.Context) error
}

func (p *Pusher) prepare(d *Decision, pool *Pool, regions map[string][]string, r Router) (payload, error) {
	switch r.Kind {
	case RouterHAProxy:
		if p.Render.HAProxy == nil {
			return payload{}, errors.New("no HAProxy renderer: build the Pusher with export's")
		}
		cmds, err := p.Render.HAProxy(d, r.Scope, r.Backend, r.Servers)
		if err != nil {
			return payload{}, fmt.Errorf("cannot render HAProxy commands: %w", err)
		}
		s := strings.Join(cmds, "\n")
		return payload{s, sha256.Sum256([]byte(r.Target() + "\n" + s)), func(ctx context.Context) error { return haproxySend(ctx, r.Runtime, cmds) }}, nil
	case RouterPDNS:
		if p.Render.PDNS == nil {
			return payload{}, errors.New("no PowerDNS renderer: build the Pusher with export's")
		}
		recs, err := p.Render.PDNS(d, pool, regions)
		if err != nil {
			return payload{}, fmt.Errorf("cannot render PowerDNS records: %w", err)
		}
		var b strings.Builder
		for _, rec := range recs {
			fmt.Fprintf(&b, "%s %d %s %s\n", rec.Name, rec.TTL, rec.Type, rec.Content)
		}
		s := strings.TrimSuffix(b.String(), "\n")
		return payload{s, sha256.Sum256([]byte(r.Target() + "\n" + s)), func(ctx context.Context) error { return p.pdnsSend(ctx, r, recs) }}, nil
	}
	return payload{}, fmt.Errorf("unknown router kind %q", r.Kind)
}

// try runs send up to Attempts times, each under Timeout, and says how
// many tries it took.
func (p *Pusher) try(ctx context.Context, send func(context.Context) error) (int, error) {
	attempts, wait := cmpOr(p.Attempts, 2), cmpOr(p.Backoff, 200*time.Millisecond)
	var err error
	for i := 1; ; i++ {
		tctx, cancel := context.WithTimeout(ctx, cmpOr(p.Timeout, 5*time.Second))
		err = send(tctx)
		cancel()
		if err == nil || i >= attempts {
			return i, err
		}
		select {
		case <-ctx.Done():
			return i, err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// due says whether a router's payload needs sending at now.
func (p *Pusher) due(key string, now time.Time, hash [32]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state[key]
	switch {
	case st == nil:
		return true
	case st.failures > 0:
		return !now.Before(st.nextTry)
	}
	return st.sent != hash || !now.Before(st.okAt.Add(cmpOr(p.Resync, 5*time.Minute)))
}

func (p *Pusher) done(key string, now time.Time, hash [32]byte, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		p.state = map[string]*routerState{}
	}
	st := p.state[key]
	if st == nil {
		st = &routerState{}
		p.state[key] = st
	}
	if ok {
		*st = routerState{sent: hash, okAt: now}
		return
	}
	st.failures++
	wait := cmpOr(p.RetryAfter, 10*time.Second) << min(st.failures-1, 10)
	st.nextTry = now.Add(min(wait, 5*time.Minute))
}

func (p *Pusher) count(r PushResult) {
	result := "ok"
	if !r.OK {
		result = "error"
	}
	metrics.GetOrCreateCounter(fmt.Sprintf(`meridian_steering_push_total{pool=%q,router=%q,kind=%q,result=%q}`, r.Pool, r.Router, r.Kind, result)).Inc()
}

func (p *Pusher) record(ctx context.Context, r PushResult) error {
	if p.Conn == nil {
		return nil
	}
	return RecordPush(ctx, p.Conn, r)
}

func (p *Pusher) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// haproxySend sends each command on a connection of its own (the runtime
// API's non-interactive mode: one command, its answer, then close) and
// fails at the first one answered with anything but nothing, which is how
// `set server` says it did what it was told.
func haproxySend(ctx context.Context, runtime string, cmds []string) error {
	network, addr, err := runtimeAddr(runtime)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		answer, err := haproxyCommand(ctx, network, addr, c)
		if err != nil {
			return fmt.Errorf("cannot send %q to the HAProxy runtime API at %s (is `stats socket … level admin` configured and HAProxy running?): %w", c, runtime, err)
		}
		if answer != "" {
			return fmt.Errorf("haproxy refused %q: %s", c, answer)
		}
	}
	return nil
}

func haproxyCommand(ctx context.Context, network, addr, cmd string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(conn, 64<<10))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// pdnsSend replaces the pool's LUA rrsets in the zone through the
// PowerDNS API, then, for a primary zone only, asks PowerDNS to NOTIFY its
// secondaries. A Native zone reaches other servers through its backend's
// own replication, so no NOTIFY is sent for it (PowerDNS would refuse or
// ignore one); the zone's kind is read before the change, which also
// tells a missing zone apart from a refused change.
func (p *Pusher) pdnsSend(ctx context.Context, r Router, recs []DNSRecord) error {
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	key := getenv(r.APIKeyEnv)
	if key == "" {
		return fmt.Errorf("%s is not set: export the PowerDNS API key (api-key in pdns.conf) in it", r.APIKeyEnv)
	}
	zoneURL := r.Target()
	var zone struct {
		Kind string `json:"kind"`
	}
	if err := p.pdnsDo(ctx, http.MethodGet, zoneURL+"?rrsets=false", key, nil, &zone); err != nil {
		return err
	}
	if err := p.pdnsDo(ctx, http.MethodPatch, zoneURL, key, pdnsPatch(recs), nil); err != nil {
		return err
	}
	switch strings.ToLower(zone.Kind) {
	case "master", "primary":
		return p.pdnsDo(ctx, http.MethodPut, zoneURL+"/notify", key, nil, nil)
	}
	return nil
}

type pdnsRRSet struct {
	Name       string       `json:"name"`
	Type       string       `json:"type"`
	TTL        int          `json:"ttl"`
	ChangeType string       `json:"changetype"`
	Records    []pdnsRecord `json:"records"`
}

type pdnsRecord struct {
	Content  string `json:"content"`
	Disabled bool   `json:"disabled"`
}

// pdnsPatch groups records into rrsets by name and type (every LUA record
// of a name is one rrset, whatever type it answers), in their order; an
// rrset takes its first record's TTL.
func pdnsPatch(recs []DNSRecord) map[string][]pdnsRRSet {
	var sets []pdnsRRSet
	at := map[[2]string]int{}
	for _, r := range recs {
		k := [2]string{strings.ToLower(r.Name), strings.ToUpper(r.Type)}
		i, ok := at[k]
		if !ok {
			i, at[k] = len(sets), len(sets)
			sets = append(sets, pdnsRRSet{Name: r.Name, Type: k[1], TTL: r.TTL, ChangeType: "REPLACE"})
		}
		sets[i].Records = append(sets[i].Records, pdnsRecord{Content: r.Content})
	}
	return map[string][]pdnsRRSet{"rrsets": sets}
}

func (p *Pusher) pdnsDo(ctx context.Context, method, url, key string, body, into any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := p.HTTP
	if client == nil {
		client = &http.Client{Timeout: cmpOr(p.Timeout, 5*time.Second)}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the PowerDNS API: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("PowerDNS answered %s to %s %s: %s%s", resp.Status, method, url, cut(msg, 300), pdnsHint(resp.StatusCode))
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			return fmt.Errorf("cannot read PowerDNS's answer to %s %s: %w", method, url, err)
		}
	}
	return nil
}

func pdnsHint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return " (check the key in api_key_env against api-key in pdns.conf)"
	case http.StatusNotFound:
		return " (create the zone first, such as `pdnsutil create-zone ZONE`, and check server_id)"
	}
	return ""
}

// pushColumns are steering_pushes' columns in the order RecordPush appends
// them.
const pushColumns = "pushed_at, push, decision, pool, router, kind, target, ok, attempts, error, sent"

// RecordPush stores one push in steering_pushes.
func RecordPush(ctx context.Context, conn driver.Conn, r PushResult) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO steering_pushes ("+pushColumns+")")
	if err == nil {
		if err = batch.Append(r.At, uint64(r.At.UnixNano()), r.Decision, r.Pool, r.Router, r.Kind, r.Target,
			b2u8(r.OK), uint8(min(r.Attempts, 255)), r.Error, r.Sent); err != nil {
			batch.Abort()
		} else {
			err = batch.Send()
		}
	}
	if err != nil {
		return fmt.Errorf("cannot record the push of pool %s to router %s: %w", r.Pool, r.Router, err)
	}
	return nil
}

// LastPushes reads the last push to every router of the pools (all when
// none are named) within HistoryLookback, by pool and router.
func LastPushes(ctx context.Context, conn driver.Conn, pools ...string) ([]PushResult, error) {
	since := time.Now().Add(-HistoryLookback).Unix()
	filter, args := "", []any{since}
	if len(pools) > 0 {
		filter, args = " AND has(?, pool)", append(args, pools)
	}
	args = append(args, args...)
	rows, err := conn.Query(ctx, `SELECT push, decision, pool, router, kind, target, ok, attempts, error, sent
FROM steering_pushes
WHERE pushed_at >= toDateTime(?)`+filter+` AND (pool, router, push) IN (
    SELECT pool, router, max(push) FROM steering_pushes WHERE pushed_at >= toDateTime(?)`+filter+` GROUP BY pool, router)
ORDER BY pool, router`, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read the last steering pushes: %w", err)
	}
	defer rows.Close()
	var out []PushResult
	for rows.Next() {
		var (
			r            PushResult
			push         uint64
			ok, attempts uint8
		)
		if err := rows.Scan(&push, &r.Decision, &r.Pool, &r.Router, &r.Kind, &r.Target, &ok, &attempts, &r.Error, &r.Sent); err != nil {
			return nil, fmt.Errorf("cannot read the last steering pushes: %w", err)
		}
		r.At, r.OK, r.Attempts = time.Unix(0, int64(push)).UTC(), ok == 1, int(attempts)
		out = append(out, r)
	}
	return out, rows.Err()
}
