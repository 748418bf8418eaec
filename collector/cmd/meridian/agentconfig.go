package main

import (
	"fmt"
	"os"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/probe"
)

// agentConfigCommand is `meridian agents config set|show|rm`: the remote
// checks an agent pulls from GET /v1/agent/config. The document is YAML
// with one key, checks:, a list with the same schema as the checks of the
// agent's file; those checks run alongside the file's.
func agentConfigCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "set, show or remove the checks an agent pulls from the collector",
		Subcommands: []*cli.Command{
			{
				Name:      "set",
				Usage:     "validate a checks document (YAML: checks: [...], as in the agent's file) and serve it to the agent",
				ArgsUsage: "NAME",
				Flags: append(clickhouseFlags(),
					&cli.StringFlag{Name: "file", Required: true, Usage: "the checks document `FILE` (only a checks: list)"}),
				Action: agentConfigSet,
			},
			{
				Name:      "show",
				Usage:     "print the checks document an agent pulls",
				ArgsUsage: "NAME",
				Flags:     clickhouseFlags(),
				Action:    forAgent(agentConfigShow),
			},
			{
				Name:      "rm",
				Usage:     "remove an agent's remote checks (it keeps its file's checks)",
				ArgsUsage: "NAME",
				Flags:     clickhouseFlags(),
				Action:    forAgent(agentConfigRemove),
			},
		},
	}
}

// oneAgent is the one agent NAME an agents config command takes.
func oneAgent(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", cliutil.UsageError("agents config %s: want exactly one agent NAME, got %d arguments", c.Command.Name, c.NArg())
	}
	return c.Args().First(), nil
}

// agentConfigSet validates the document before it opens the database, so
// a mistake in it is told without ClickHouse.
func agentConfigSet(c *cli.Context) error {
	name, err := oneAgent(c)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(c.String("file"))
	if err != nil {
		return fmt.Errorf("cannot read the checks document: %w", err)
	}
	// The collector runs no probe: every kind defined is accepted.
	checks, err := probe.ParseChecks(c.String("file"), b, nil)
	if err != nil {
		return err
	}
	return withStore(func(c *cli.Context, conn driver.Conn) error {
		ac, err := store.SetAgentConfig(c.Context, conn, name, string(b))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "agent %s: config version %d set, %d checks; the agent applies it on its next poll\n", name, ac.Version, len(checks))
		return nil
	})(c)
}

// forAgent checks the agent NAME, then opens the database for action.
func forAgent(action func(c *cli.Context, conn driver.Conn, name string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		name, err := oneAgent(c)
		if err != nil {
			return err
		}
		return withStore(func(c *cli.Context, conn driver.Conn) error { return action(c, conn, name) })(c)
	}
}

func agentConfigShow(c *cli.Context, conn driver.Conn, name string) error {
	ac, ok, err := store.GetAgentConfig(c.Context, conn, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("agent %s has no remote config: set one with `meridian agents config set %s --file checks.yml`", name, name)
	}
	fmt.Fprintf(c.App.ErrWriter, "# agent %s, config version %d, set %s\n", name, ac.Version, ac.UpdatedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	_, err = fmt.Fprint(c.App.Writer, ac.YAML)
	return err
}

func agentConfigRemove(c *cli.Context, conn driver.Conn, name string) error {
	if _, err := store.SetAgentConfig(c.Context, conn, name, ""); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "agent %s: remote config removed; the agent drops its remote checks on its next poll\n", name)
	return nil
}

// humanBytes prints n as B, KiB, MiB or GiB.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
