// Package cliutil holds what both of Meridian's command lines share: exit
// statuses and flags-after-arguments parsing on top of urfave/cli v2.
package cliutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// ExitError carries an exit status: 1 for a failure, 2 for bad usage.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// UsageError is a bad-usage error (exit status 2).
func UsageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// ExitCode returns the exit status for err (0 for nil).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// Interspersed moves the flags of the innermost (sub)command named in args
// before its positional arguments, so "agents add NAME --region R" works:
// urfave/cli v2 stops reading flags at the first positional argument.
func Interspersed(args []string, cmds []*cli.Command) []string {
	if len(args) < 2 {
		return args
	}
	i := 1
	var cmd *cli.Command
	for i < len(args) {
		next := find(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds, i = next, next.Subcommands, i+1
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
	in := args[i:]
	for j := 0; j < len(in); j++ {
		a := in[j]
		if a == "--" {
			rest = append(rest, in[j:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && j+1 < len(in) {
			j++
			flags = append(flags, in[j])
		}
	}
	out := append(append([]string{}, args[:i]...), flags...)
	return append(out, rest...)
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// Run runs app with Meridian's conventions: errors are returned, never
// os.Exit'ed; usage mistakes (bad flags, unknown commands) are UsageErrors
// that name the --help to read; flags may follow arguments.
func Run(ctx context.Context, app *cli.App, args []string) error {
	var notFound error
	names := make([]string, 0, len(app.Commands))
	for _, c := range app.Commands {
		names = append(names, c.Name)
	}
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.HideVersion = true
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return UsageError("%v (see %s --help)", err, app.Name)
	}
	app.CommandNotFound = func(_ *cli.Context, name string) {
		notFound = UsageError("unknown command %q: use %s", name, strings.Join(names, ", "))
	}
	setUsageErrors(app.Commands, app.Name)
	err := app.RunContext(ctx, Interspersed(args, app.Commands))
	if err == nil {
		err = notFound
	}
	// urfave/cli reports a missing required flag as a plain error.
	if err != nil && ExitCode(err) != 2 && strings.HasPrefix(err.Error(), "Required flag") {
		err = UsageError("%v (see %s --help)", err, app.Name)
	}
	return err
}

func setUsageErrors(cmds []*cli.Command, prefix string) {
	for _, c := range cmds {
		name := prefix + " " + c.Name
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return UsageError("%s: %v (see %s --help)", name, err, name)
		}
		setUsageErrors(c.Subcommands, name)
	}
}
