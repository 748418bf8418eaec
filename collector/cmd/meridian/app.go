package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/buildinfo"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/result"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// run is the whole program; main only adds signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cliutil.Run(ctx, &cli.App{
		Name:      "meridian",
		Usage:     "collect, store and query internet latency measurements",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			serveCommand(), migrateCommand(), agentsCommand(), sitesCommand(), queryCommand(), retentionCommand(), steeringCommand(), tokensCommand(), versionCommand(),
		},
	}, args)
}

// clickhouseFlags are the flags every server-side command takes.
func clickhouseFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "clickhouse", Value: "127.0.0.1:9000", EnvVars: []string{"MERIDIAN_CLICKHOUSE"}, Usage: "ClickHouse native protocol `HOST:PORT`"},
		&cli.StringFlag{Name: "database", Value: "meridian", EnvVars: []string{"MERIDIAN_DATABASE"}, Usage: "ClickHouse database `NAME`"},
		&cli.StringFlag{Name: "user", Value: "default", EnvVars: []string{"MERIDIAN_USER"}, Usage: "ClickHouse user"},
		&cli.StringFlag{Name: "password", EnvVars: []string{"MERIDIAN_PASSWORD"}, Usage: "ClickHouse password"},
	}
}

func storeOptions(c *cli.Context) store.Options {
	return store.Options{
		Addr: c.String("clickhouse"), Database: c.String("database"),
		User: c.String("user"), Password: c.String("password"),
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the result contract version, the commit and the Go version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintln(c.App.Writer, buildinfo.String("meridian", version, result.Version))
			return err
		},
	}
}

// withStore opens the database the command's flags name, runs action on
// it and closes it.
func withStore(action func(c *cli.Context, conn driver.Conn) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		conn, err := store.Open(c.Context, storeOptions(c))
		if err != nil {
			return err
		}
		defer conn.Close()
		return action(c, conn)
	}
}
