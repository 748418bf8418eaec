package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/internal/result"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// exitError carries the exit status: 1 for a failure, 2 for bad usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

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
			return usageError("%v (see meridian-agent --help)", err)
		},
		CommandNotFound: func(_ *cli.Context, name string) {
			notFound = usageError("unknown command %q: use check, check-config, run or version", name)
		},
		HideVersion: true,
	}
	for _, c := range app.Commands {
		c.OnUsageError = func(cc *cli.Context, err error, _ bool) error {
			return usageError("%s: %v (see meridian-agent %s --help)", cc.Command.Name, err, cc.Command.Name)
		}
	}
	err := app.RunContext(ctx, interspersed(args, app.Commands))
	if err == nil {
		err = notFound
	}
	return err
}

// interspersed moves a command's flags before its arguments, so that
// "check http URL --json" works: urfave/cli v2 stops at the first argument.
func interspersed(args []string, cmds []*cli.Command) []string {
	if len(args) < 3 {
		return args
	}
	var cmd *cli.Command
	for _, c := range cmds {
		if c.HasName(args[1]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, rest []string
	in := args[2:]
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			rest = append(rest, in[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(in) {
			i++
			flags = append(flags, in[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, rest...)
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
