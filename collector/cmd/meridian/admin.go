package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create the database and apply schema migrations (safe to re-run)",
		Flags: append(clickhouseFlags(),
			&cli.StringFlag{Name: "cluster", Usage: "migrate every node of cluster `NAME` (from system.clusters): X_local tables plus Distributed tables X"},
			&cli.BoolFlag{Name: "replicated", Usage: "with --cluster: Replicated* engines (needs ZooKeeper/Keeper and {shard}/{replica} macros)"}),
		Action: func(c *cli.Context) error {
			o := storeOptions(c)
			o.Cluster = c.String("cluster")
			o.Replicated = c.Bool("replicated")
			n, err := store.Migrate(c.Context, o, func(format string, args ...any) {
				fmt.Fprintf(c.App.Writer, format+"\n", args...)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "database %s is up to date (%d migrations applied now)\n", o.Database, n)
			return nil
		},
	}
}

func agentsCommand() *cli.Command {
	return &cli.Command{
		Name:  "agents",
		Usage: "register agents, list them and set their remote checks",
		Subcommands: []*cli.Command{
			agentConfigCommand(),
			{
				Name:      "add",
				Usage:     "register an agent; prints its token (shown once) on the last line",
				ArgsUsage: "NAME",
				Flags: append(clickhouseFlags(),
					&cli.StringFlag{Name: "region", Required: true, Usage: "the agent's `REGION`, for example eu-west"},
					&cli.StringFlag{Name: "country", Usage: "ISO 3166 alpha-2 `CC` the agent measures from, for example BR: its results count in that steering scope"}),
				Action: agentsAdd,
			},
			{
				Name:   "list",
				Usage:  "list registered agents",
				Flags:  clickhouseFlags(),
				Action: withStore(agentsList),
			},
		},
	}
}

// agentsAdd checks the usage before it connects, then registers the agent.
func agentsAdd(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError("agents add: want exactly one NAME, got %d arguments", c.NArg())
	}
	country := strings.ToUpper(c.String("country"))
	if country != "" && !steering.KnownCountry(country) {
		return cliutil.UsageError("agents add: --country %q is not an ISO 3166 alpha-2 code: use one such as BR or DE", c.String("country"))
	}
	return withStore(func(c *cli.Context, conn driver.Conn) error {
		name := c.Args().First()
		token, err := store.AddAgent(c.Context, conn, name, c.String("region"))
		if err != nil {
			return err
		}
		w := c.App.Writer
		// The agent exists now: its token is printed even if the country
		// cannot be stored, or it would be lost.
		var countryErr error
		if country != "" {
			if countryErr = store.SetAgentCountry(c.Context, conn, name, country); countryErr == nil {
				fmt.Fprintf(w, "agent %s measures from country %s.\n", name, country)
			}
		}
		fmt.Fprintf(w, "agent %s added in region %s. Its token is shown once; give it to the agent as MERIDIAN_TOKEN:\n", name, c.String("region"))
		fmt.Fprintln(w, token)
		if countryErr != nil {
			return fmt.Errorf("agent %s was added without a country: %w", name, countryErr)
		}
		return nil
	})(c)
}

// agentsList prints every agent with its activity and last heartbeat.
func agentsList(c *cli.Context, conn driver.Conn) error {
	agents, err := store.ListAgents(c.Context, conn)
	if err != nil {
		return err
	}
	activity, err := store.AgentsActivity(c.Context, conn)
	if err != nil {
		return err
	}
	beats, err := store.LatestHeartbeats(c.Context, conn)
	if err != nil {
		return err
	}
	countries, err := store.AgentCountries(c.Context, conn)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tregion\tcountry\tadded\tlast result\tlag\tresults 24h\tversion\tlast heartbeat\tspool")
	for _, a := range agents {
		act, seen := activity[a.Name]
		last, lag := "never", "-"
		if seen {
			last = act.LastResult.UTC().Format(time.DateTime)
			lag = act.Lag().Round(time.Second).String()
		}
		ver, beat, spool := "-", "-", "-"
		if hb, ok := beats[a.Name]; ok {
			ver, beat = hb.Version, hb.TS.UTC().Format(time.DateTime)
			spool = fmt.Sprintf("%d (%s)", hb.SpoolResults, humanBytes(hb.SpoolBytes))
		}
		country := countries[a.Name]
		if country == "" {
			country = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.Name, a.Region, country,
			a.CreatedAt.UTC().Format(time.DateTime), last, lag, act.Results, ver, beat, spool)
	}
	return tw.Flush()
}
