package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Site is a website that embeds the beacon script. Its key is public (it is
// in every page), so it is stored as is; what protects a site's data is the
// list of origins its beacons may come from.
type Site struct {
	Name       string
	Key        string
	Origins    []string          // normalised: scheme://host[:port], no default port
	Sample     float64           // sampling rate in [0, 1]
	RespectGPC bool              // the script does nothing under Global Privacy Control
	CDNs       map[string]string // CDN name → probe URL, for the script's active probes
	CreatedAt  time.Time
}

// SiteKeyPrefix marks Meridian site keys.
const SiteKeyPrefix = "mrs_"

// MaxCDNs is how many CDN probes the script runs at most (rum-js/BEACON.md).
const MaxCDNs = 8

var cdnNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// NormalizeOrigin returns the canonical form of a web origin
// ("https://shop.example", "http://127.0.0.1:8000"), the form browsers send
// in the Origin header: lowercase scheme and host, no default port, no path.
func NormalizeOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("cannot parse origin %q: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("origin %q: want http:// or https://, for example https://shop.example", s)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port] only, for example https://shop.example", s)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// NewSite checks and normalises what `meridian sites add` (or `sites set`)
// was given.
func NewSite(name string, origins []string, sample float64, respectGPC bool, cdns map[string]string) (Site, error) {
	s := Site{Name: name, Sample: sample, RespectGPC: respectGPC, CDNs: map[string]string{}}
	if !agentNameRE.MatchString(name) {
		return Site{}, fmt.Errorf("site %q: use letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	if len(origins) == 0 {
		return Site{}, fmt.Errorf("site %q: give at least one --origin, for example --origin https://shop.example", name)
	}
	seen := map[string]bool{}
	for _, o := range origins {
		n, err := NormalizeOrigin(o)
		if err != nil {
			return Site{}, fmt.Errorf("site %q: %w", name, err)
		}
		if !seen[n] {
			seen[n] = true
			s.Origins = append(s.Origins, n)
		}
	}
	if !(sample >= 0 && sample <= 1) {
		return Site{}, fmt.Errorf("site %q: --sample %v is outside [0, 1]", name, sample)
	}
	if len(cdns) > MaxCDNs {
		return Site{}, fmt.Errorf("site %q: %d CDNs, the script probes at most %d", name, len(cdns), MaxCDNs)
	}
	for cdn, probe := range cdns {
		if !cdnNameRE.MatchString(cdn) {
			return Site{}, fmt.Errorf("site %q: CDN name %q: use letters, digits, '.', '_' and '-' (at most 32)", name, cdn)
		}
		u, err := url.Parse(probe)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Site{}, fmt.Errorf("site %q: CDN %s probe URL %q: want an absolute http(s) URL of a small object, for example https://cdn.example/probe.gif", name, cdn, probe)
		}
		s.CDNs[cdn] = u.String()
	}
	return s, nil
}

// AddSite registers s under a new site key, which it returns and sets in s.
func AddSite(ctx context.Context, conn driver.Conn, s *Site) (key string, err error) {
	sites, err := ListSites(ctx, conn)
	if err != nil {
		return "", err
	}
	for _, o := range sites {
		if o.Name == s.Name {
			return "", fmt.Errorf("site %q: it already exists (origins %s); pick another name", s.Name, strings.Join(o.Origins, ", "))
		}
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("cannot make a site key: %w", err)
	}
	s.Key = SiteKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := time.Now()
	s.CreatedAt = now.UTC().Truncate(time.Second)
	if err := putSite(ctx, conn, *s, now); err != nil {
		return "", fmt.Errorf("cannot store site %q: %w", s.Name, err)
	}
	return s.Key, nil
}

// UpdateSite changes the site called name: change gets it as stored and
// returns what it should become (checked with NewSite); its key and
// creation time stay whatever change returns. It returns the site before
// and after. Collectors see the change within their site cache's TTL.
func UpdateSite(ctx context.Context, conn driver.Conn, name string, change func(old Site) (Site, error)) (old, updated Site, err error) {
	sites, err := ListSites(ctx, conn)
	if err != nil {
		return Site{}, Site{}, err
	}
	i := slices.IndexFunc(sites, func(s Site) bool { return s.Name == name })
	if i < 0 {
		return Site{}, Site{}, fmt.Errorf("cannot change site %q: no such site; `meridian sites list` shows the registered ones", name)
	}
	old = sites[i]
	if updated, err = change(old); err != nil {
		return old, Site{}, err
	}
	updated.Name, updated.Key, updated.CreatedAt = old.Name, old.Key, old.CreatedAt
	if err := putSite(ctx, conn, updated, time.Now()); err != nil {
		return old, Site{}, fmt.Errorf("cannot change site %q: %w", name, err)
	}
	return old, updated, nil
}

// putSite writes s as the site's newest version.
func putSite(ctx context.Context, conn driver.Conn, s Site, now time.Time) error {
	cdns, err := json.Marshal(s.CDNs)
	if err != nil {
		return err
	}
	return insert(ctx, conn, "sites", []string{"name", "site_key", "origins", "sample", "respect_gpc", "cdns", "created_at", "version"},
		s.Name, s.Key, s.Origins, s.Sample, *b2u(&s.RespectGPC), string(cdns), s.CreatedAt, uint64(now.UnixNano()))
}

// ListSites returns the registered sites, by name. Sorted here: on a
// cluster, 18.16 answers FINAL … ORDER BY through the Distributed table
// with "Cannot find column version" on the node holding the rows.
func ListSites(ctx context.Context, conn driver.Conn) ([]Site, error) {
	rows, err := conn.Query(ctx, "SELECT name, site_key, origins, sample, respect_gpc, cdns, created_at FROM sites FINAL")
	if err != nil {
		return nil, fmt.Errorf("cannot list sites: %w", err)
	}
	defer rows.Close()
	var out []Site
	for rows.Next() {
		var (
			s    Site
			gpc  uint8
			cdns string
		)
		if err := rows.Scan(&s.Name, &s.Key, &s.Origins, &s.Sample, &gpc, &cdns, &s.CreatedAt); err != nil {
			return nil, fmt.Errorf("cannot read site row: %w", err)
		}
		s.RespectGPC = gpc != 0
		if err := json.Unmarshal([]byte(cdns), &s.CDNs); err != nil {
			return nil, fmt.Errorf("cannot read CDNs of site %q: %w", s.Name, err)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, rows.Err()
}

// CDNNames returns the site's CDN names in order.
func (s Site) CDNNames() []string {
	names := make([]string, 0, len(s.CDNs))
	for n := range s.CDNs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AllowsOrigin reports whether origin (as a browser sends it) is registered.
func (s Site) AllowsOrigin(origin string) bool {
	n, err := NormalizeOrigin(origin)
	if err != nil {
		return false
	}
	for _, o := range s.Origins {
		if o == n {
			return true
		}
	}
	return false
}

// SiteCache answers site-key and origin lookups from memory, reloading the
// sites table every TTL and, at most once per MissReload, on a miss (so a
// site added a moment ago works at once while junk keys cannot hammer
// ClickHouse).
type SiteCache struct {
	conn       driver.Conn
	ttl        time.Duration
	missReload time.Duration

	mu       sync.Mutex
	byKey    map[string]Site
	origins  map[string]bool
	loadedAt time.Time
}

// NewSiteCache returns a cache over the sites table.
func NewSiteCache(conn driver.Conn) *SiteCache {
	return &SiteCache{conn: conn, ttl: 30 * time.Second, missReload: time.Second}
}

// Lookup returns the site with key.
func (c *SiteCache) Lookup(ctx context.Context, key string) (Site, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, hit := c.byKey[key]
	if err := c.refresh(ctx, hit); err != nil {
		return Site{}, false, err
	}
	s, ok := c.byKey[key]
	return s, ok, nil
}

// KnownOrigin reports whether origin is registered for any site: a CORS
// preflight carries no site key, so this is all it can be checked against.
func (c *SiteCache) KnownOrigin(ctx context.Context, origin string) (bool, error) {
	n, err := NormalizeOrigin(origin)
	if err != nil {
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refresh(ctx, c.origins[n]); err != nil {
		return false, err
	}
	return c.origins[n], nil
}

// refresh reloads when the copy is old, or when the caller missed and the
// copy is older than missReload. With a copy in hand, a failed reload keeps
// serving it while ClickHouse is away.
func (c *SiteCache) refresh(ctx context.Context, hit bool) error {
	age := time.Since(c.loadedAt)
	if c.byKey != nil && age <= c.ttl && (hit || age <= c.missReload) {
		return nil
	}
	sites, err := ListSites(ctx, c.conn)
	if err != nil {
		if c.byKey != nil {
			return nil
		}
		return err
	}
	byKey, origins := make(map[string]Site, len(sites)), map[string]bool{}
	for _, s := range sites {
		byKey[s.Key] = s
		for _, o := range s.Origins {
			origins[o] = true
		}
	}
	c.byKey, c.origins, c.loadedAt = byKey, origins, time.Now()
	return nil
}
