package faultkit

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is what an id names: a result (its id) or a beacon (its pv).
type Kind string

const (
	Results Kind = "results"
	Beacons Kind = "beacons"
)

// Ledger records every id produced, what it held (a fingerprint of the
// fields a reader relies on), and whether a collector acknowledged it: a
// 2xx seen going back through a Proxy, whether or not the sender got it.
// Result ids come from the agents' own spools (Produce) and from the wire
// (Tap), beacon pvs from the generator.
type Ledger struct {
	mu       sync.Mutex
	items    map[Kind]map[string]*Item
	posts    []Post
	agents   map[string]string // bearer token -> agent name
	regions  map[string]string // agent name -> region
	inflight map[string]int    // who -> requests gone up whole, not answered yet
}

// Item is one id.
type Item struct {
	Who      string // the agent, or "beacons"
	Sum      string // what was produced (see ResultSum, BeaconSum)
	Order    int64  // where its producer put it (spool segment<<32 | line); -1 unknown
	Acked    bool
	Sent     int  // requests that carried it up whole
	Mismatch bool // the wire carried other values than its producer spooled
}

// Post is one finished request of results or beacons.
type Post struct {
	Kind       Kind
	Who        string
	Upstream   string
	Status     int
	RetryAfter string
	Replay     string // the Meridian-Replay header
	N          int
	Complete   bool
	Sent, Done time.Time
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{items: map[Kind]map[string]*Item{Results: {}, Beacons: {}},
		agents: map[string]string{}, regions: map[string]string{}, inflight: map[string]int{}}
}

// Agent tells the ledger an agent's token and region.
func (l *Ledger) Agent(name, token, region string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.agents[token], l.regions[name] = name, region
}

// Region is an agent's region.
func (l *Ledger) Region(agent string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.regions[agent]
}

func (l *Ledger) item(k Kind, id, who string) *Item {
	it := l.items[k][id]
	if it == nil {
		it = &Item{Who: who, Order: -1}
		l.items[k][id] = it
	}
	return it
}

// Produce records id as produced by who, holding sum, at order.
func (l *Ledger) Produce(k Kind, id, who, sum string, order int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	it := l.item(k, id, who)
	if it.Sum != "" && it.Sum != sum {
		it.Mismatch = true
	}
	it.Sum = sum
	if order >= 0 {
		it.Order = order
	}
}

// Tap is a Proxy's tap: it records results and beacons going up and the
// answers coming back.
func (l *Ledger) Tap(ex Exchange) {
	kind := Results
	switch {
	case ex.Method != "POST":
		return
	case strings.HasPrefix(ex.Path, "/v1/beacon"):
		kind = Beacons
	case ex.Path != "/v1/results":
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	who := "beacons"
	if kind == Results {
		who = l.agents[strings.TrimPrefix(ex.Header.Get("Authorization"), "Bearer ")]
	}
	if !ex.Final {
		l.inflight[who]++
		return
	}
	if ex.Complete {
		l.inflight[who]--
	}
	ids := l.record(kind, who, ex)
	p := Post{Kind: kind, Who: who, Upstream: ex.Upstream, Status: ex.Status, N: len(ids), Complete: ex.Complete, Sent: ex.Sent, Done: ex.Done}
	if ex.RespHeader != nil {
		p.RetryAfter = ex.RespHeader.Get("Retry-After")
	}
	p.Replay = ex.Header.Get("Meridian-Replay")
	l.posts = append(l.posts, p)
}

// record notes the ids a finished exchange carried and returns them.
func (l *Ledger) record(kind Kind, who string, ex Exchange) []string {
	if !ex.Complete {
		return nil
	}
	var ids []string
	for _, line := range bytes.Split(ex.Body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		id, sum, ok := wireSum(kind, line, l.regions[who])
		if !ok {
			continue
		}
		it := l.item(kind, id, who)
		if it.Sum == "" {
			it.Sum = sum
		} else if kind == Results && it.Sum != sum {
			it.Mismatch = true
		}
		it.Sent++
		it.Acked = it.Acked || ex.Status/100 == 2
		ids = append(ids, id)
	}
	return ids
}

func wireSum(kind Kind, line []byte, region string) (string, string, bool) {
	if kind == Results {
		return ResultSum(line, region)
	}
	var b struct{ PV string }
	if json.Unmarshal(line, &b) != nil || b.PV == "" {
		return "", "", false
	}
	return b.PV, "", true // the generator said what it held
}

// InFlight is how many requests of who went up whole and wait for their
// answer.
func (l *Ledger) InFlight(who string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight[who]
}

// Posts returns the finished requests so far, in order.
func (l *Ledger) Posts() []Post {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Post(nil), l.posts...)
}

// Items returns a copy of the ids of kind k.
func (l *Ledger) Items(k Kind) map[string]Item {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Item, len(l.items[k]))
	for id, it := range l.items[k] {
		out[id] = *it
	}
	return out
}

// ResultSum reads a result line (the wire NDJSON, as agents spool it) and
// returns its id and the fingerprint of what a reader of the results table
// relies on; region is its agent's (the collector adds it).
func ResultSum(line []byte, region string) (id, sum string, ok bool) {
	var r struct {
		ID, Agent, Check, Kind, Target, Error string
		TS                                    time.Time
		OK                                    bool
		TotalMs                               *float64 `json:"total_ms"`
	}
	if err := json.Unmarshal(line, &r); err != nil || r.ID == "" {
		return "", "", false
	}
	return r.ID, Sum(r.Agent, region, r.Check, r.Kind, r.Target, strconv.FormatInt(r.TS.UnixMilli(), 10), boolDigit(r.OK), r.Error, floatText(r.TotalMs)), true
}

// Sum joins fields into a fingerprint.
func Sum(fields ...string) string { return strings.Join(fields, "|") }

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// floatText prints a float as ClickHouse's TabSeparated does (shortest
// round-trip form), and NULL as \N.
func floatText(f *float64) string {
	if f == nil {
		return `\N`
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}
