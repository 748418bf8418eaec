package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
)

// tokensCommand is `meridian tokens add|list`: tokens that are not an
// agent's, such as the routers' token for GET /v1/steering.
func tokensCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokens",
		Usage: "add and list API tokens that are not an agent's (for example for routers reading the steering feed)",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a token; prints it (shown once) on the last line",
				ArgsUsage: "NAME",
				Flags: append(clickhouseFlags(),
					&cli.StringFlag{Name: "role", Required: true, Usage: "the token's `ROLE`: " + strings.Join(store.Roles, ", ")}),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cliutil.UsageError("tokens add: want exactly one NAME, got %d arguments", c.NArg())
					}
					name, role := c.Args().First(), c.String("role")
					if !slices.Contains(store.Roles, role) {
						return cliutil.UsageError("tokens add: unknown role %q: use --role %s", role, strings.Join(store.Roles, " or --role "))
					}
					return withStore(func(c *cli.Context, conn driver.Conn) error {
						token, err := store.AddToken(c.Context, conn, name, role)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "token %s added with role %s. It is shown once; send it as Authorization: Bearer TOKEN:\n", name, role)
						fmt.Fprintln(c.App.Writer, token)
						return nil
					})(c)
				},
			},
			{
				Name:  "list",
				Usage: "list the enabled tokens (their names and roles, never the tokens)",
				Flags: clickhouseFlags(),
				Action: withStore(func(c *cli.Context, conn driver.Conn) error {
					tokens, err := store.ListTokens(c.Context, conn)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "name\trole\tadded")
					for _, t := range tokens {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Role, t.CreatedAt.UTC().Format(time.DateTime))
					}
					return tw.Flush()
				}),
			},
		},
	}
}
