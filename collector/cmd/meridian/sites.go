package main

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
	rumjs "github.com/meridian-net/meridian/rum-js"
)

func collectorURLFlag() cli.Flag {
	return &cli.StringFlag{Name: "collector-url", Value: "http://127.0.0.1:8080", EnvVars: []string{"MERIDIAN_COLLECTOR_URL"},
		Usage: "public `URL` of the collector (or of its rum.v1.js) that browsers load the script from"}
}

func sitesCommand() *cli.Command {
	return &cli.Command{
		Name:  "sites",
		Usage: "register RUM sites, change them, list them, print their snippet",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "register a site; prints the snippet to paste and, on the last line, the site key",
				ArgsUsage: "NAME",
				Flags: append(clickhouseFlags(),
					&cli.StringSliceFlag{Name: "origin", Required: true, Usage: "`ORIGIN` the site's pages are served from, for example https://shop.example (repeatable)"},
					&cli.Float64Flag{Name: "sample", Value: 1, Usage: "share of page views measured, in [0, 1]"},
					&cli.StringSliceFlag{Name: "cdn", Usage: "`NAME=URL` of a small object on a CDN that browsers probe (repeatable, at most 8)"},
					&cli.BoolFlag{Name: "gpc", Usage: "measure nothing for visitors who send Global Privacy Control"},
					collectorURLFlag()),
				Action: addSite,
			},
			{
				Name:      "set",
				Usage:     "change a site: only the flags given change; prints the new snippet (its key stays)",
				ArgsUsage: "NAME",
				Flags: append(clickhouseFlags(),
					&cli.StringSliceFlag{Name: "origin", Usage: "`ORIGIN` the site's pages are served from (repeatable; replaces the list)"},
					&cli.Float64Flag{Name: "sample", Usage: "share of page views measured, in [0, 1]"},
					&cli.StringSliceFlag{Name: "cdn", Usage: "`NAME=URL` of a CDN object browsers probe (repeatable; replaces the list)"},
					&cli.BoolFlag{Name: "no-cdns", Usage: "stop the browsers' CDN probes"},
					&cli.BoolFlag{Name: "gpc", Usage: "--gpc or --gpc=false: measure nothing for visitors who send Global Privacy Control, or measure them"},
					collectorURLFlag()),
				Action: setSite,
			},
			{
				Name:   "list",
				Usage:  "list registered sites",
				Flags:  clickhouseFlags(),
				Action: listSites,
			},
			{
				Name:      "snippet",
				Usage:     "print a site's script tag",
				ArgsUsage: "NAME",
				Flags:     append(clickhouseFlags(), collectorURLFlag()),
				Action:    printSnippet,
			},
		},
	}
}

// cdnFlags reads repeated --cdn NAME=URL.
func cdnFlags(c *cli.Context) (map[string]string, error) {
	cdns := map[string]string{}
	for _, kv := range c.StringSlice("cdn") {
		name, u, ok := strings.Cut(kv, "=")
		if !ok || name == "" || u == "" {
			return nil, cliutil.UsageError("sites %s: --cdn %q: want NAME=URL, for example --cdn cf=https://cdn.example/probe.gif", c.Command.Name, kv)
		}
		cdns[name] = u
	}
	return cdns, nil
}

func addSite(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError("sites add: want exactly one NAME, got %d arguments", c.NArg())
	}
	scriptURL, err := scriptURL(c.String("collector-url"))
	if err != nil {
		return err
	}
	cdns, err := cdnFlags(c)
	if err != nil {
		return err
	}
	site, err := store.NewSite(c.Args().First(), c.StringSlice("origin"), c.Float64("sample"), c.Bool("gpc"), cdns)
	if err != nil {
		return err
	}
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	key, err := store.AddSite(c.Context, conn, &site)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "site %s added for %s. Paste this tag into the <head> of every page:\n\n", site.Name, strings.Join(site.Origins, ", "))
	fmt.Fprintf(w, "%s\n\nIts site key (public: it is in the tag):\n%s\n", Snippet(site, scriptURL), key)
	return nil
}

func setSite(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError("sites set: want exactly one NAME, got %d arguments", c.NArg())
	}
	if c.IsSet("cdn") && c.Bool("no-cdns") {
		return cliutil.UsageError("sites set: --cdn and --no-cdns contradict each other")
	}
	scriptURL, err := scriptURL(c.String("collector-url"))
	if err != nil {
		return err
	}
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	// Only the flags given change.
	old, site, err := store.UpdateSite(c.Context, conn, c.Args().First(), func(old store.Site) (store.Site, error) {
		origins, sample, gpc, cdns := old.Origins, old.Sample, old.RespectGPC, old.CDNs
		if c.IsSet("origin") {
			origins = c.StringSlice("origin")
		}
		if c.IsSet("sample") {
			sample = c.Float64("sample")
		}
		if c.IsSet("gpc") {
			gpc = c.Bool("gpc")
		}
		if c.IsSet("cdn") {
			var err error
			if cdns, err = cdnFlags(c); err != nil {
				return store.Site{}, err
			}
		}
		if c.Bool("no-cdns") {
			cdns = nil
		}
		return store.NewSite(old.Name, origins, sample, gpc, cdns)
	})
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "site %s changed (origins %s). Collectors take the change within 30 seconds.\n", site.Name, strings.Join(site.Origins, ", "))
	if Snippet(site, scriptURL) != Snippet(old, scriptURL) {
		fmt.Fprintf(w, "The tag changed: paste it in place of the old one.\n\n%s\n", Snippet(site, scriptURL))
	}
	return nil
}

func listSites(c *cli.Context) error {
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	sites, err := store.ListSites(c.Context, conn)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tkey\tsample\torigins\tcdns\tadded")
	for _, s := range sites {
		cdns := strings.Join(s.CDNNames(), ",")
		if cdns == "" {
			cdns = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Key, strconv.FormatFloat(s.Sample, 'g', -1, 64),
			strings.Join(s.Origins, ","), cdns, s.CreatedAt.UTC().Format(time.DateTime))
	}
	return tw.Flush()
}

func printSnippet(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError("sites snippet: want exactly one NAME, got %d arguments", c.NArg())
	}
	scriptURL, err := scriptURL(c.String("collector-url"))
	if err != nil {
		return err
	}
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	sites, err := store.ListSites(c.Context, conn)
	if err != nil {
		return err
	}
	for _, s := range sites {
		if s.Name == c.Args().First() {
			_, err := fmt.Fprintln(c.App.Writer, Snippet(s, scriptURL))
			return err
		}
	}
	return fmt.Errorf("cannot print the snippet of site %q: no such site; `meridian sites list` shows the registered ones", c.Args().First())
}

// scriptURL turns --collector-url into the script's URL: a collector base
// URL gets /rum.v1.js, a URL that already names a .js file is kept.
func scriptURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", cliutil.UsageError("--collector-url %q: want the collector's public http(s) URL, for example https://rum.example.net", s)
	}
	if !strings.HasSuffix(u.Path, ".js") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/rum.v1.js"
	}
	return u.String(), nil
}

// Snippet returns the script tag for site, loading the script from
// scriptURL with Subresource Integrity (rum-js/BEACON.md describes the
// attributes).
func Snippet(s store.Site, scriptURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<script async src="%s" data-site="%s" data-sample="%s"`,
		html.EscapeString(scriptURL), html.EscapeString(s.Key), strconv.FormatFloat(s.Sample, 'g', -1, 64))
	if len(s.CDNs) > 0 {
		js, _ := json.Marshal(s.CDNs) // sorted keys; <, > and & are escaped as \u00XX
		fmt.Fprintf(&b, ` data-cdns='%s'`, strings.ReplaceAll(string(js), "'", "&#39;"))
	}
	if s.RespectGPC {
		b.WriteString(` data-gpc="1"`)
	}
	fmt.Fprintf(&b, ` integrity="%s" crossorigin="anonymous"></script>`, rumjs.SRI())
	return b.String()
}

// beaconFlags are serve's flags for the RUM beacon path.
func beaconFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "geoip-db", EnvVars: []string{"MERIDIAN_GEOIP_DB"}, Usage: "MaxMind-format City database `FILE` (GeoLite2-City, DB-IP lite) for beacon country/region/city; none: left empty"},
		&cli.StringFlag{Name: "asn-db", EnvVars: []string{"MERIDIAN_ASN_DB"}, Usage: "MaxMind-format ASN database `FILE` (GeoLite2-ASN) for the ASN and organisation of beacons and of traceroute hops; none: left empty"},
		&cli.StringSliceFlag{Name: "trusted-proxy", EnvVars: []string{"MERIDIAN_TRUSTED_PROXIES"}, Usage: "`CIDR` of a proxy or load balancer whose X-Forwarded-For is believed (repeatable)"},
	}
}

// setupBeacons turns on POST /v1/beacon in cfg from serve's flags: the site
// cache, the enrichment databases and a beacon writer on conn. The returned
// function flushes the writer and closes the databases.
func setupBeacons(c *cli.Context, conn driver.Conn, opt store.WriterOptions, cfg *server.Config) (closeFn func(), err error) {
	trusted, err := enrich.ParsePrefixes(c.StringSlice("trusted-proxy"))
	if err != nil {
		return nil, cliutil.UsageError("serve: --trusted-proxy: %v", err)
	}
	en, err := enrich.Open(enrich.Options{GeoIPPath: c.String("geoip-db"), ASNPath: c.String("asn-db"), TrustedProxies: trusted})
	if err != nil {
		return nil, err
	}
	w, err := store.NewBeaconWriter(conn, opt)
	if err != nil {
		en.Close()
		return nil, err
	}
	cfg.Sites, cfg.Beacons, cfg.Enricher = store.NewSiteCache(conn), w, en
	return func() { w.Close(); en.Close() }, nil
}
