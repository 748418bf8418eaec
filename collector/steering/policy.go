package steering

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-net/meridian/internal/yamlconf"
)

// Policy is the steering configuration: pools of members to weigh, the
// knobs that tune the engine, and the regions scopes fall back through.
// testdata/good.yml shows every key.
type Policy struct {
	Pools []Pool `yaml:"pools"`
	// Defaults overrides the built-in DefaultKnobs for every pool; a pool
	// overrides it in turn with the same keys written beside its members.
	Defaults Knobs `yaml:"defaults"`
	// Regions maps a region name to the ISO country codes in it; a country
	// scope without enough data falls back to its region before global.
	Regions map[string][]string `yaml:"regions"`

	regionOf map[string]string // country → region
}

// Pool is a DNS name whose answers are steered between members.
type Pool struct {
	Name    string   `yaml:"name"`
	DNSName string   `yaml:"dns_name"` // fully qualified, ending in "."
	TTL     int      `yaml:"ttl"`      // seconds; DefaultTTL when left out
	Members []Member `yaml:"members"`
	// Home pins a scope ("country:BR") to a member while that member is up
	// and not degraded: it gets all but the other members' floors.
	Home map[string]string `yaml:"home"`
	// Overrides holds the knobs written at the pool's top level, beside
	// name and members; zero where the file left them out. Knobs() is the
	// merged view the engine uses.
	Overrides Knobs `yaml:",inline"`
	// Routers get the pool's decisions pushed after each step (routers.go).
	Routers []Router `yaml:"routers"`

	knobs Knobs
}

// Member is one answer a pool can give: a CDN or a regional cell.
type Member struct {
	Name      string   `yaml:"name"`      // also the name its measurements carry unless overridden
	Addresses []string `yaml:"addresses"` // IPv4/IPv6 answers, or
	CNAME     string   `yaml:"cname"`     // a fully qualified CNAME target
	Synthetic string   `yaml:"synthetic"` // agent results' cdn_member (else check name) if not Name
	RUM       string   `yaml:"rum"`       // RUM rum_cdn.cdn if not Name
}

// SyntheticName is the name agent results carry for m.
func (m Member) SyntheticName() string { return orName(m.Synthetic, m.Name) }

// RUMName is the name RUM beacons carry for m.
func (m Member) RUMName() string { return orName(m.RUM, m.Name) }

func orName(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Knobs tune scoring and weighting; see the package comment for how each
// one enters the formulas.
type Knobs struct {
	Window            time.Duration `yaml:"window"`             // data window each decision reads (the SQL's)
	FastWindow        time.Duration `yaml:"fast_window"`        // the window's recent end, read for fast degradations; 0 turns it off
	FastMinSamples    uint64        `yaml:"fast_min_samples"`   // fast-window samples from which its latency bar is τ alone (fewer: higher)
	Quantile          float64       `yaml:"quantile"`           // latency quantile, 0.75 = p75
	Metric            string        `yaml:"metric"`             // "ttfb" (total_ms where a result has no TTFB) or "total"
	ErrorPenaltyMs    float64       `yaml:"error_penalty_ms"`   // score = Q + error rate × this
	RUMWeight         float64       `yaml:"rum_weight"`         // blend weight of RUM figures
	SyntheticWeight   float64       `yaml:"synthetic_weight"`   // blend weight of agent figures
	MinSamples        uint64        `yaml:"min_samples"`        // per member, or the scope falls back
	TauMs             float64       `yaml:"tau_ms"`             // weight ∝ exp(-(score-best)/τ)
	FloorPercent      int           `yaml:"floor_percent"`      // every member not down keeps this much
	Alpha             float64       `yaml:"alpha"`              // EWMA factor for scores, 0 < α ≤ 1
	HysteresisPercent int           `yaml:"hysteresis_percent"` // smallest move that gets published
	MinDwell          time.Duration `yaml:"min_dwell"`          // least time between published changes
	DownErrorRate     float64       `yaml:"down_error_rate"`    // a round at or above this is bad
	DownAfter         int           `yaml:"down_after"`         // consecutive bad rounds → down
	UpAfter           int           `yaml:"up_after"`           // consecutive good rounds → back up
	RampPercent       int           `yaml:"ramp_percent"`       // most points a returning member gains per round
	HomeReleaseMs     float64       `yaml:"home_release_ms"`    // a member this far behind the best is degraded
	Scopes            ScopeLevels   `yaml:"scopes"`
}

// ScopeLevels says which optional scope levels get published; global and
// countries always are.
type ScopeLevels struct {
	ASN    bool `yaml:"asn"`
	Region bool `yaml:"region"`
}

// DefaultTTL is a pool's TTL when the policy gives none.
const DefaultTTL = 30

// DefaultKnobs are the built-in knobs. τ, α and the hysteresis are tuned
// together in engine_test.go against 200 samples per member and source per
// window (p75 noise about 5%, 0.5% errors): a member 200 ms worse drops
// below 15% in the first round, min_dwell permitting, while a day of 15 s
// rounds of noise republishes nothing. With α 0.7 a change shows in one
// round; τ 60 ms makes 200 ms worth a factor of 28; and 25 points of
// hysteresis clears the noise two equal members' weights see at τ 60, the
// first decision's included (in 45 simulated days the largest move held
// back was 21 points). With figures from far more samples, a smaller
// hysteresis_percent steers more finely.
func DefaultKnobs() Knobs {
	return Knobs{
		Window: 5 * time.Minute, FastWindow: 30 * time.Second, FastMinSamples: 100, Quantile: 0.75, Metric: "ttfb",
		ErrorPenaltyMs: 1000, RUMWeight: 0.5, SyntheticWeight: 0.5, MinSamples: 20,
		TauMs: 60, FloorPercent: 2, Alpha: 0.7, HysteresisPercent: 25, MinDwell: 30 * time.Second,
		DownErrorRate: 0.5, DownAfter: 2, UpAfter: 2, RampPercent: 20, HomeReleaseMs: 100,
		Scopes: ScopeLevels{ASN: true, Region: true},
	}
}

// Knobs is the pool's merged view: built-in defaults, then the policy's
// defaults, then the pool's own keys.
func (p Pool) Knobs() Knobs {
	if p.knobs == (Knobs{}) { // built in Go rather than parsed
		return DefaultKnobs()
	}
	return p.knobs
}

// Pool finds a pool by name.
func (p *Policy) Pool(name string) (*Pool, bool) {
	for i := range p.Pools {
		if p.Pools[i].Name == name {
			return &p.Pools[i], true
		}
	}
	return nil, false
}

// RegionOf is the policy region holding country cc, or "".
func (p *Policy) RegionOf(cc string) string {
	if p == nil {
		return ""
	}
	if p.regionOf != nil {
		return p.regionOf[cc]
	}
	for _, r := range sortedKeys(p.Regions) { // a Policy built in Go, not parsed
		if slices.Contains(p.Regions[r], cc) {
			return r
		}
	}
	return ""
}

func (p *Policy) indexRegions() {
	p.regionOf = map[string]string{}
	for _, r := range sortedKeys(p.Regions) {
		for _, cc := range p.Regions[r] {
			if _, dup := p.regionOf[cc]; !dup {
				p.regionOf[cc] = r
			}
		}
	}
}

// ParsePolicy decodes, defaults and validates a policy; name prefixes
// errors as in "name:line: …", several joined one per line.
func ParsePolicy(name string, b []byte) (*Policy, error) {
	p := &Policy{Defaults: DefaultKnobs()}
	doc, err := yamlconf.Decode(name, b, p)
	if errors.Is(err, yamlconf.ErrEmpty) {
		return nil, fmt.Errorf("%s: the policy is empty (want pools: with at least one pool)", name)
	}
	if err != nil {
		return nil, err
	}
	for i := range p.Pools {
		pl := &p.Pools[i]
		pl.knobs = p.Defaults
		if n := doc.Node("pools", strconv.Itoa(i)); n != nil {
			if err := n.Decode(&pl.knobs); err != nil {
				return nil, yamlconf.Error(name, err)
			}
		}
		if pl.TTL == 0 {
			pl.TTL = DefaultTTL
		}
	}
	p.indexRegions()
	errs := p.validate(doc)
	slices.SortStableFunc(errs, func(a, b error) int { return lineOf(name, a) - lineOf(name, b) })
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// lineOf reads the line from an error worded "name:line: …", so several
// errors come in the file's order.
func lineOf(name string, err error) int {
	rest, _ := strings.CutPrefix(err.Error(), name+":")
	n, _ := strconv.Atoi(rest[:strings.IndexFunc(rest+":", func(r rune) bool { return r < '0' || r > '9' })])
	return n
}

var nameRE = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

func validName(s string) bool { return nameRE.MatchString(s) }

var memberRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

func (p *Policy) validate(doc *yamlconf.Doc) []error {
	var errs []error
	if len(p.Pools) == 0 {
		errs = append(errs, doc.Errorf("no pools: add at least one under pools:", "pools"))
	}
	errs = append(errs, p.validateRegions(doc)...)
	for _, ke := range checkKnobs(p.Defaults) {
		errs = append(errs, doc.Errorf("defaults."+ke.key+" "+ke.msg, "defaults", ke.key))
	}
	seen := map[string]int{}
	for i := range p.Pools {
		errs = append(errs, p.validatePool(doc, i, seen)...)
		errs = append(errs, p.validateRouters(doc, i)...)
	}
	return errs
}

func (p *Policy) validateRegions(doc *yamlconf.Doc) []error {
	var errs []error
	in := map[string]string{}
	for _, r := range sortedKeys(p.Regions) {
		at := func(msg string) { errs = append(errs, doc.Errorf("regions."+r+": "+msg, "regions", r)) }
		if !validName(r) {
			at("a region name is 1 to 63 of a-z, 0-9 and -")
		}
		if len(p.Regions[r]) == 0 {
			at("list at least one country code, such as [DE, FR]")
		}
		for _, cc := range p.Regions[r] {
			switch {
			case !KnownCountry(cc):
				at(fmt.Sprintf("%q is not an ISO 3166 alpha-2 country code (write it upper-case, such as DE)", cc))
			case in[cc] != "":
				at(fmt.Sprintf("%s is already in region %s; a country belongs to one region", cc, in[cc]))
			default:
				in[cc] = r
			}
		}
	}
	return errs
}

func (p *Policy) validatePool(doc *yamlconf.Doc, i int, seen map[string]int) []error {
	pl := &p.Pools[i]
	var errs []error
	at := func(msg string, path ...string) {
		prefix := fmt.Sprintf("pools[%d]", i)
		if pl.Name != "" {
			prefix += " (" + pl.Name + ")"
		}
		errs = append(errs, doc.Errorf(prefix+": "+msg, append([]string{"pools", strconv.Itoa(i)}, path...)...))
	}
	switch {
	case !validName(pl.Name):
		at(fmt.Sprintf("name %q must be 1 to 63 of a-z, 0-9 and -", pl.Name), "name")
	case seen[pl.Name] > 0:
		at(fmt.Sprintf("name %q is already used by pools[%d]; names must be unique", pl.Name, seen[pl.Name]-1), "name")
	default:
		seen[pl.Name] = i + 1
	}
	if !validFQDN(pl.DNSName) {
		at(fmt.Sprintf("dns_name %q must be a fully qualified name ending in a dot, such as www.example.com.", pl.DNSName), "dns_name")
	}
	if pl.TTL < 1 || pl.TTL > 86400 {
		at(fmt.Sprintf("ttl %d must be from 1 to 86400 seconds", pl.TTL), "ttl")
	}
	if len(pl.Members) == 0 {
		at("no members: add at least one under members: (a single member is allowed)", "members")
	}
	names := map[string]int{}
	for j := range pl.Members {
		if msg, key := checkMember(pl.Members[j], names, j); msg != "" {
			at(fmt.Sprintf("members[%d]: %s", j, msg), "members", strconv.Itoa(j), key)
		}
	}
	k := pl.knobs
	for _, ke := range checkKnobs(k) {
		if ke.key == "fast_window" && doc.Node("pools", strconv.Itoa(i), ke.key) == nil && doc.Node("pools", strconv.Itoa(i), "window") != nil {
			// A pool that shortens its window below the inherited fast window.
			at(fmt.Sprintf("window %v must be longer than fast_window %v: set fast_window shorter, or 0s to turn it off", k.Window, k.FastWindow), "window")
			continue
		}
		if doc.Node("pools", strconv.Itoa(i), ke.key) != nil { // else reported under defaults
			at(ke.key+" "+ke.msg, ke.key)
		}
	}
	if n := len(pl.Members); n > 0 && k.FloorPercent*n > 100 {
		at(fmt.Sprintf("floor_percent %d × %d members exceeds 100; lower the floor", k.FloorPercent, n), "floor_percent")
	}
	for _, s := range sortedKeys(pl.Home) {
		if msg := p.checkHome(pl, s, k); msg != "" {
			at(fmt.Sprintf("home %q: %s", s, msg), "home", s)
		}
	}
	return errs
}

// checkMember returns what is wrong with m and the key to point at.
func checkMember(m Member, names map[string]int, j int) (msg, key string) {
	switch {
	case !memberRE.MatchString(m.Name):
		return fmt.Sprintf("name %q must be 1 to 63 of letters, digits, '.', '_' and '-'", m.Name), "name"
	case names[m.Name] > 0:
		return fmt.Sprintf("name %q is already used by members[%d]; names must be unique in a pool", m.Name, names[m.Name]-1), "name"
	case len(m.Addresses) == 0 && m.CNAME == "":
		return "give addresses or a cname for the answer", ""
	case len(m.Addresses) > 0 && m.CNAME != "":
		return "give addresses or a cname, not both (a DNS name cannot have both)", "cname"
	case m.CNAME != "" && !validFQDN(m.CNAME):
		return fmt.Sprintf("cname %q must be a fully qualified name ending in a dot, such as shop.cdn.example.", m.CNAME), "cname"
	}
	names[m.Name] = j + 1
	for _, a := range m.Addresses {
		if ip, err := netip.ParseAddr(a); err != nil || ip.Zone() != "" {
			return fmt.Sprintf("address %q is not an IPv4 or IPv6 address", a), "addresses"
		}
	}
	return "", ""
}

func (p *Policy) checkHome(pl *Pool, s string, k Knobs) string {
	sc, err := ParseScope(s)
	switch {
	case err != nil:
		return strings.TrimPrefix(err.Error(), fmt.Sprintf("cannot parse scope %q: ", s))
	case sc == Global:
		return "global cannot have a home; pin countries or regions"
	case sc.Region != "" && p.Regions[sc.Region] == nil:
		return fmt.Sprintf("region %q is not under regions:", sc.Region)
	case sc.Region != "" && !k.Scopes.Region:
		return "region scopes are not published (scopes.region is false)"
	case sc.ASN != 0 && !k.Scopes.ASN:
		return "ASN scopes are not published (scopes.asn is false)"
	case !slices.ContainsFunc(pl.Members, func(m Member) bool { return m.Name == pl.Home[s] }):
		return fmt.Sprintf("member %q is not in this pool", pl.Home[s])
	}
	return ""
}

// Scope is where a decision applies: the zero value is global; Region alone
// is a region of the policy; Country alone a country; Country and ASN a
// network in a country.
type Scope struct {
	Country string
	ASN     uint32
	Region  string
}

// Global is the scope every other one falls back to.
var Global = Scope{}

// String writes "global", "region:NAME", "country:BR" or "country:BR/asn:28573".
func (s Scope) String() string {
	asn := "asn:" + strconv.FormatUint(uint64(s.ASN), 10)
	switch {
	case s.Region != "":
		return "region:" + s.Region
	case s.Country == "" && s.ASN == 0:
		return "global"
	case s.Country == "":
		return asn // not a valid scope; named so errors can say which
	case s.ASN == 0:
		return "country:" + s.Country
	}
	return "country:" + s.Country + "/" + asn
}

// ParseScope reads the forms String writes.
func ParseScope(s string) (Scope, error) {
	switch {
	case s == "global":
		return Global, nil
	case strings.HasPrefix(s, "region:"):
		name := strings.TrimPrefix(s, "region:")
		if !validName(name) {
			return Scope{}, fmt.Errorf("cannot parse scope %q: a region name is 1 to 63 of a-z, 0-9 and -", s)
		}
		return Scope{Region: name}, nil
	case strings.HasPrefix(s, "country:"):
		cc, asn, hasASN := strings.Cut(strings.TrimPrefix(s, "country:"), "/asn:")
		if !KnownCountry(cc) {
			return Scope{}, fmt.Errorf("cannot parse scope %q: %q is not an ISO 3166 alpha-2 country code (write it upper-case, such as BR)", s, cc)
		}
		if !hasASN {
			return Scope{Country: cc}, nil
		}
		n, err := strconv.ParseUint(asn, 10, 32)
		if err != nil || n == 0 {
			return Scope{}, fmt.Errorf("cannot parse scope %q: the ASN must be a number from 1 to 4294967295", s)
		}
		return Scope{Country: cc, ASN: uint32(n)}, nil
	}
	return Scope{}, fmt.Errorf("cannot parse scope %q: want global, region:NAME, country:CC or country:CC/asn:N", s)
}

// Parent is the next scope up: asn → country → the country's region in p
// (if any) → global. Global's parent is global.
func (s Scope) Parent(p *Policy) Scope {
	switch {
	case s.Country != "" && s.ASN != 0:
		return Scope{Country: s.Country}
	case s.Country != "":
		if r := p.RegionOf(s.Country); r != "" {
			return Scope{Region: r}
		}
	}
	return Global
}

// ISO 3166-1 alpha-2 codes officially assigned (249), in runs by first letter.
const countryCodes = "" +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ " +
	"BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ " +
	"DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY " +
	"HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY " +
	"MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ OM " +
	"PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ " +
	"TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ " +
	"VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"

var countries = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(countryCodes) {
		m[c] = true
	}
	return m
}()

// KnownCountry says whether cc is an assigned ISO 3166-1 alpha-2 code,
// upper-case. User-assigned codes such as XK (Kosovo in some GeoIP
// databases) are not.
func KnownCountry(cc string) bool { return countries[cc] }

type knobError struct{ key, msg string }

// checkKnobs lists out-of-range knobs; the messages say the range.
func checkKnobs(k Knobs) []knobError {
	var errs []knobError
	bad := func(cond bool, key, msg string) {
		if cond {
			errs = append(errs, knobError{key, msg})
		}
	}
	bad(k.Window < 10*time.Second || k.Window > 24*time.Hour, "window", fmt.Sprintf("%v must be from 10s to 24h", k.Window))
	bad(k.FastWindow < 0 || k.FastWindow >= k.Window, "fast_window", fmt.Sprintf("%v must be 0s (off) or shorter than window", k.FastWindow))
	bad(k.FastMinSamples < 1, "fast_min_samples", "must be at least 1")
	bad(!(k.Quantile > 0 && k.Quantile < 1), "quantile", fmt.Sprintf("%v must be between 0 and 1, such as 0.75 for p75", k.Quantile))
	bad(k.Metric != "ttfb" && k.Metric != "total", "metric", fmt.Sprintf("%q must be ttfb or total", k.Metric))
	bad(!(k.ErrorPenaltyMs >= 0 && k.ErrorPenaltyMs <= 1e6), "error_penalty_ms", fmt.Sprintf("%v must be from 0 to 1000000", k.ErrorPenaltyMs))
	bad(!(k.RUMWeight >= 0), "rum_weight", fmt.Sprintf("%v must not be negative", k.RUMWeight))
	bad(!(k.SyntheticWeight >= 0), "synthetic_weight", fmt.Sprintf("%v must not be negative", k.SyntheticWeight))
	bad(k.RUMWeight+k.SyntheticWeight == 0, "rum_weight", "and synthetic_weight are both 0; give one of them a weight")
	bad(k.MinSamples < 1, "min_samples", "must be at least 1")
	bad(!(k.TauMs >= 1 && k.TauMs <= 1e6), "tau_ms", fmt.Sprintf("%v must be from 1 to 1000000 ms", k.TauMs))
	bad(k.FloorPercent < 0 || k.FloorPercent > 50, "floor_percent", fmt.Sprintf("%d must be from 0 to 50", k.FloorPercent))
	bad(!(k.Alpha > 0 && k.Alpha <= 1), "alpha", fmt.Sprintf("%v must be above 0 and at most 1 (1 turns smoothing off)", k.Alpha))
	bad(k.HysteresisPercent < 0 || k.HysteresisPercent > 50, "hysteresis_percent", fmt.Sprintf("%d must be from 0 to 50", k.HysteresisPercent))
	bad(k.MinDwell < 0 || k.MinDwell > 24*time.Hour, "min_dwell", fmt.Sprintf("%v must be from 0s to 24h", k.MinDwell))
	bad(!(k.DownErrorRate > 0 && k.DownErrorRate <= 1), "down_error_rate", fmt.Sprintf("%v must be above 0 and at most 1", k.DownErrorRate))
	bad(k.DownAfter < 1, "down_after", fmt.Sprintf("%d must be at least 1 round", k.DownAfter))
	bad(k.UpAfter < 1, "up_after", fmt.Sprintf("%d must be at least 1 round", k.UpAfter))
	bad(k.RampPercent < 1 || k.RampPercent > 100, "ramp_percent", fmt.Sprintf("%d must be from 1 to 100", k.RampPercent))
	bad(!(k.HomeReleaseMs > 0), "home_release_ms", fmt.Sprintf("%v must be above 0", k.HomeReleaseMs))
	return errs
}

// validFQDN accepts host names ending in a dot, as DNS zone files write them.
func validFQDN(s string) bool {
	if len(s) < 2 || len(s) > 254 || !strings.HasSuffix(s, ".") {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
