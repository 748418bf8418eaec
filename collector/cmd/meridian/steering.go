package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/steering/export"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
)

// steeringCommand is `meridian steering …`: the policy, and the decisions
// the publisher (`serve --steering` or `steering run`) makes from it.
func steeringCommand() *cli.Command {
	return &cli.Command{
		Name:  "steering",
		Usage: "set the steering policy; show, export and explain the weights routers get",
		Subcommands: []*cli.Command{
			steeringPolicyCommand(),
			steeringReplayCommand(),
			{
				Name:  "show",
				Usage: "print the last published weights per pool, scope and member",
				Flags: append(clickhouseFlags(),
					&cli.StringFlag{Name: "pool", Usage: "only pool `P`"},
					&cli.StringFlag{Name: "scope", Usage: "only scope `S` (global, region:NAME, country:CC, country:CC/asn:N)"},
					freshFlag()),
				Action: steeringShow,
			},
			{
				Name:  "export",
				Usage: "print one pool's decision for a router or a script",
				Flags: append(clickhouseFlags(),
					&cli.StringFlag{Name: "pool", Required: true, Usage: "pool `P`"},
					&cli.StringFlag{Name: "format", Value: "json", Usage: "`F`: " + strings.Join(export.Formats, ", ") + " (json is the /v1/steering feed document)"},
					&cli.StringFlag{Name: "scope", Usage: "haproxy: the scope `S` this proxy applies (default global)"},
					&cli.StringFlag{Name: "backend", Usage: "haproxy: the backend `B` whose servers are the members (default the pool's name)"},
					&cli.StringSliceFlag{Name: "server", Usage: "haproxy: `MEMBER=SERVER`, a member's server name when it differs (repeat per member)"},
					&cli.StringFlag{Name: "hosted-zone-id", Usage: "route53: the hosted zone `Z` holding the pool's dns_name (its alias records point there)"},
					freshFlag()),
				Action: steeringExport,
			},
			{
				Name:  "explain",
				Usage: "say why a scope has its weights and what would change them",
				Flags: append(clickhouseFlags(),
					&cli.StringFlag{Name: "pool", Required: true, Usage: "pool `P`"},
					&cli.StringFlag{Name: "scope", Value: "global", Usage: "scope `S`"},
					freshFlag()),
				Action: steeringExplain,
			},
			{
				Name:  "run",
				Usage: "compute and publish decisions in the foreground (when no `serve --steering` does); exactly one publisher per database",
				Flags: append(clickhouseFlags(),
					&cli.DurationFlag{Name: "every", Value: 15 * time.Second, Usage: "publish every `D`"}),
				Action: steeringRun,
			},
		},
	}
}

func freshFlag() cli.Flag {
	return &cli.BoolFlag{Name: "fresh", Usage: "compute a decision now from the current figures, without publishing it"}
}

func steeringPolicyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "set or show the steering policy",
		Subcommands: []*cli.Command{
			{
				Name:  "set",
				Usage: "validate a policy file and store it; the publisher applies it at its next step",
				Flags: append(clickhouseFlags(),
					&cli.StringFlag{Name: "file", Required: true, Usage: "the policy `FILE` (YAML)"}),
				Action: func(c *cli.Context) error {
					b, err := os.ReadFile(c.String("file"))
					if err != nil {
						return fmt.Errorf("cannot read the steering policy: %w", err)
					}
					return withStore(func(c *cli.Context, conn driver.Conn) error {
						p, version, err := steering.SetPolicy(c.Context, conn, c.String("file"), b)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "steering policy v%d set: %d pools; the publisher applies it at its next step\n", version, len(p.Pools))
						return nil
					})(c)
				},
			},
			{
				Name:  "show",
				Usage: "print the stored policy",
				Flags: clickhouseFlags(),
				Action: withStore(func(c *cli.Context, conn driver.Conn) error {
					_, version, doc, err := steering.LoadPolicy(c.Context, conn)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.ErrWriter, "# steering policy v%d, set %s\n", version, time.Unix(0, int64(version)).UTC().Format("2006-01-02 15:04:05 UTC"))
					_, err = fmt.Fprint(c.App.Writer, doc)
					return err
				}),
			},
		},
	}
}

// decisions are what show, export and explain print.
type decisions struct {
	policy *steering.Policy
	byPool map[string]*steering.Decision
	conn   driver.Conn
}

// loadDecisions reads the last published decisions of pool (all pools when
// empty), or with --fresh computes them now without publishing.
func loadDecisions(c *cli.Context, conn driver.Conn, pool string) (*decisions, error) {
	p, _, _, err := steering.LoadPolicy(c.Context, conn)
	if err != nil {
		return nil, err
	}
	var pools []string
	if pool != "" {
		if _, ok := p.Pool(pool); !ok {
			return nil, cliutil.UsageError("unknown pool %q: the policy has %s", pool, strings.Join(policyPools(p), ", "))
		}
		pools = []string{pool}
	}
	last, err := steering.Latest(c.Context, conn, pools...)
	if err != nil {
		return nil, err
	}
	ds := &decisions{policy: p, byPool: last.Decisions, conn: conn}
	if c.Bool("fresh") {
		if ds.byPool, err = compute(c, conn, p, last.State, pools); err != nil {
			return nil, err
		}
	}
	for _, name := range pools {
		if ds.byPool[name] == nil {
			return nil, fmt.Errorf("no steering decision is published for pool %s yet: run `meridian serve --steering` (or `meridian steering run`), or add --fresh", name)
		}
	}
	if len(ds.byPool) == 0 {
		return nil, errors.New("no steering decision is published yet: run `meridian serve --steering` (or `meridian steering run`), or add --fresh")
	}
	return ds, nil
}

// compute makes one round of decisions from the last published state, as
// the publisher's next step would, and publishes nothing.
func compute(c *cli.Context, conn driver.Conn, p *steering.Policy, st *steering.State, pools []string) (map[string]*steering.Decision, error) {
	if len(pools) == 0 {
		pools = policyPools(p)
	}
	countries, err := store.AgentCountries(c.Context, conn)
	if err != nil {
		return nil, err
	}
	e, now := steering.NewEngine(p, st), time.Now()
	out := map[string]*steering.Decision{}
	for _, name := range pools {
		pool, _ := p.Pool(name)
		stats, err := steering.ReadStats(c.Context, conn, p, pool, countries, now)
		if err != nil {
			return nil, err
		}
		if out[name], err = e.Compute(now, name, stats); err != nil {
			return nil, fmt.Errorf("cannot decide pool %s: %w", name, err)
		}
	}
	return out, nil
}

func policyPools(p *steering.Policy) []string {
	var names []string
	for _, pl := range p.Pools {
		names = append(names, pl.Name)
	}
	return names
}

// scopeOf finds scope in d, or says which scopes d has.
func scopeOf(d *steering.Decision, scope string) (*steering.ScopeDecision, error) {
	if sd, ok := d.Scope(scope); ok {
		return sd, nil
	}
	var have []string
	for _, s := range d.Scopes {
		have = append(have, s.Scope)
	}
	return nil, cliutil.UsageError("pool %s has no scope %q: it has %s", d.Pool, scope, strings.Join(have, ", "))
}

func withDecisions(c *cli.Context, f func(*decisions) error) error {
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	ds, err := loadDecisions(c, conn, c.String("pool"))
	if err != nil {
		return err
	}
	return f(ds)
}

func steeringShow(c *cli.Context) error {
	return withDecisions(c, func(ds *decisions) error {
		names := make([]string, 0, len(ds.byPool))
		for name := range ds.byPool {
			names = append(names, name)
		}
		slices.Sort(names)
		var rows []*steering.ScopeDecision
		var pools []string
		for _, name := range names {
			d := ds.byPool[name]
			if s := c.String("scope"); s != "" {
				sd, err := scopeOf(d, s)
				if err != nil {
					if len(names) > 1 {
						continue // another pool may have it
					}
					return err
				}
				rows, pools = append(rows, sd), append(pools, name)
				continue
			}
			for i := range d.Scopes {
				rows, pools = append(rows, &d.Scopes[i]), append(pools, name)
			}
		}
		if len(rows) == 0 {
			return cliutil.UsageError("no pool has scope %q: see `meridian steering show` for the scopes published", c.String("scope"))
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "pool\tscope\tmember\tweight\tstate\tscore_ms\tsamples\trule\tfallback")
		for i, sd := range rows {
			fallback := "-"
			if len(sd.Fallback) > 0 {
				fallback = "from " + sd.FiguresFrom
			}
			for _, m := range sd.Members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", pools[i], sd.Scope, m.Name, m.Weight, m.State,
					ms(m.ScoreMs, "-"), m.Samples, sd.Rule, fallback)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return showPushes(c, ds, slices.Compact(pools))
	})
}

// showPushes prints one line per router of the pools: its last push.
func showPushes(c *cli.Context, ds *decisions, pools []string) error {
	last, err := steering.LastPushes(c.Context, ds.conn, pools...)
	if err != nil {
		return err
	}
	for _, name := range pools {
		pool, ok := ds.policy.Pool(name)
		if !ok {
			continue
		}
		for _, r := range pool.Routers {
			line := "never pushed"
			for _, p := range last {
				if p.Pool != name || p.Router != r.Name {
					continue
				}
				at := p.At.Format("2006-01-02 15:04:05 UTC")
				if line = fmt.Sprintf("ok %s (%d attempts)", at, p.Attempts); !p.OK {
					line = fmt.Sprintf("FAILED %s (%d attempts): %s", at, p.Attempts, p.Error)
				}
			}
			fmt.Fprintf(c.App.Writer, "router %s/%s (%s %s): %s\n", name, r.Name, r.Kind, r.Target(), line)
		}
	}
	return nil
}

// ms formats a figure in milliseconds; none when it does not exist.
func ms(v float64, none string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return none
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// steeringExport renders one pool's decision through collector/steering/export,
// as GET /v1/steering/export does.
func steeringExport(c *cli.Context) error {
	format := c.String("format")
	if !export.Known(format) {
		return cliutil.UsageError("steering export: unknown format %q: use one of %s", format, strings.Join(export.Formats, ", "))
	}
	opts := export.Options{Scope: c.String("scope"), Backend: c.String("backend"), HostedZoneID: c.String("hosted-zone-id")}
	for _, kv := range c.StringSlice("server") {
		member, server, ok := strings.Cut(kv, "=")
		if !ok || member == "" || server == "" {
			return cliutil.UsageError("steering export: --server %q must be MEMBER=SERVER, such as --server cdn-a=cdn_a_1", kv)
		}
		if opts.Servers == nil {
			opts.Servers = map[string]string{}
		}
		opts.Servers[member] = server
	}
	return withDecisions(c, func(ds *decisions) error {
		d := ds.byPool[c.String("pool")]
		pool, ok := ds.policy.Pool(d.Pool)
		if !ok {
			return fmt.Errorf("cannot export pool %s: the policy no longer has it", d.Pool)
		}
		b, err := export.Render(format, d, pool, ds.policy.Regions, opts)
		var oe *export.OptionError
		if errors.As(err, &oe) {
			return cliutil.UsageError("steering export: %v", err)
		}
		if err != nil {
			return err
		}
		_, err = c.App.Writer.Write(b)
		return err
	})
}

func steeringExplain(c *cli.Context) error {
	return withDecisions(c, func(ds *decisions) error {
		d := ds.byPool[c.String("pool")]
		if _, err := scopeOf(d, c.String("scope")); err != nil {
			return err
		}
		pool, _ := ds.policy.Pool(d.Pool)
		_, err := fmt.Fprint(c.App.Writer, steering.Explain(d, c.String("scope"), pool.Knobs()))
		return err
	})
}

func steeringRun(c *cli.Context) error {
	if c.Duration("every") <= 0 {
		return cliutil.UsageError("steering run: --every must be positive, for example --every 15s")
	}
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, _, _, err := steering.LoadPolicy(c.Context, conn); err != nil {
		return err // fail at once rather than log the same error every step
	}
	r := &steering.Runner{
		Conn:         conn,
		AgentCountry: func(ctx context.Context) (map[string]string, error) { return store.AgentCountries(ctx, conn) },
		Logf: func(format string, args ...any) {
			fmt.Fprintf(c.App.ErrWriter, time.Now().UTC().Format(time.DateTime)+" "+format+"\n", args...)
		},
	}
	r.Pusher = &steering.Pusher{Conn: conn, Render: export.Renderers, Logf: r.Logf}
	r.Run(c.Context, c.Duration("every"))
	return nil
}
