package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/result"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// run is the whole program; main only adds signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var notFound error
	app := &cli.App{
		Name:      "meridian-agent",
		Usage:     "measure targets and ship the results to a Meridian collector",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands:  []*cli.Command{checkCommand(), checkConfigCommand(), runCommand(), versionCommand()},
		// The caller prints errors and picks the exit status; never os.Exit here.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return cliutil.UsageError("%v (see meridian-agent --help)", err)
		},
		CommandNotFound: func(_ *cli.Context, name string) {
			notFound = cliutil.UsageError("unknown command %q: use check, check-config, run or version", name)
		},
		HideVersion: true,
	}
	for _, c := range app.Commands {
		c.OnUsageError = func(cc *cli.Context, err error, _ bool) error {
			return cliutil.UsageError("%s: %v (see meridian-agent %s --help)", cc.Command.Name, err, cc.Command.Name)
		}
	}
	err := app.RunContext(ctx, cliutil.Interspersed(args, app.Commands))
	if err == nil {
		err = notFound
	}
	return err
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and the result contract version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "meridian-agent %s (result contract v%d)\n", version, result.Version)
			return nil
		},
	}
}
