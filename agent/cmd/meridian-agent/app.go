package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/internal/buildinfo"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/result"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// run is the whole program; main only adds signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cliutil.Run(ctx, &cli.App{
		Name:      "meridian-agent",
		Usage:     "measure targets and ship the results to a Meridian collector",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands:  []*cli.Command{checkCommand(), checkConfigCommand(), runCommand(), versionCommand()},
	}, args)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the result contract version, the commit and the Go version",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, buildinfo.String("meridian-agent", version, result.Version))
			return nil
		},
	}
}
