package cliutil

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestInterspersed(t *testing.T) {
	cmds := []*cli.Command{
		{Name: "agents", Subcommands: []*cli.Command{{Name: "add", Flags: []cli.Flag{
			&cli.StringFlag{Name: "region"}, &cli.BoolFlag{Name: "json"}}}}},
		{Name: "check", Flags: []cli.Flag{&cli.DurationFlag{Name: "timeout"}, &cli.BoolFlag{Name: "json"}}},
	}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"m", "agents", "add", "ams-1", "--region", "eu"}, []string{"m", "agents", "add", "--region", "eu", "ams-1"}},
		{[]string{"m", "agents", "add", "ams-1", "--json", "x"}, []string{"m", "agents", "add", "--json", "ams-1", "x"}},
		{[]string{"m", "check", "http", "URL", "--timeout=2s", "--", "-x"}, []string{"m", "check", "--timeout=2s", "http", "URL", "--", "-x"}},
		{[]string{"m", "nope", "a", "--b"}, []string{"m", "nope", "a", "--b"}},
		{[]string{"m"}, []string{"m"}},
	} {
		if got := Interspersed(tc.in, cmds); !slices.Equal(got, tc.want) {
			t.Errorf("Interspersed(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{{nil, 0}, {errors.New("x"), 1}, {UsageError("bad"), 2}, {&ExitError{Code: 1, Err: errors.New("x")}, 1}} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v): got %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	app := func() *cli.App {
		return &cli.App{Name: "m", Writer: io.Discard, ErrWriter: io.Discard, Commands: []*cli.Command{{
			Name: "add", Flags: []cli.Flag{&cli.StringFlag{Name: "region", Required: true}},
			Action: func(*cli.Context) error { return errors.New("ran") },
		}}}
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"m", "nope"}, 2},
		{[]string{"m", "add", "x"}, 2},                  // required flag missing
		{[]string{"m", "add", "x", "--bogus"}, 2},       // unknown flag
		{[]string{"m", "add", "x", "--region", "r"}, 1}, // ran and failed
	} {
		if got := ExitCode(Run(context.Background(), app(), tc.args)); got != tc.code {
			t.Errorf("Run(%q): got exit %d, want %d", tc.args, got, tc.code)
		}
	}
}
