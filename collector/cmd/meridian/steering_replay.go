package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
)

// steeringReplayCommand is `meridian steering replay`: what a policy would
// have published over a past window, so it is tuned before it is trusted.
func steeringReplayCommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "decide a pool over a past window as the publisher would have, and count the changes; publishes nothing",
		Flags: append(clickhouseFlags(),
			&cli.StringFlag{Name: "pool", Usage: "pool `P` (required)"},
			&cli.DurationFlag{Name: "since", Value: 24 * time.Hour, Usage: "replay from this long ago"},
			&cli.StringFlag{Name: "until", Usage: "replay up to `T`: RFC 3339 (2026-12-01T10:00:00Z) or a duration ago (2h); default now"},
			&cli.DurationFlag{Name: "every", Value: 15 * time.Second, Usage: "decide every `D`, as serve --steering-every or steering run --every"},
			&cli.StringFlag{Name: "policy", Usage: "replay the policy `FILE` (YAML) instead of the stored one"},
			&cli.StringFlag{Name: "format", Value: "table", Usage: "table or json (the whole report, every published set of weights included)"},
			&cli.BoolFlag{Name: "changes", Usage: "with --format table: also list every set of weights published, per scope"}),
		Action: steeringReplay,
	}
}

func steeringReplay(c *cli.Context) error {
	from, to, err := replayWindow(c, time.Now())
	if err != nil {
		return err
	}
	if c.String("pool") == "" {
		return cliutil.UsageError("steering replay: --pool is required, such as --pool www")
	}
	if f := c.String("format"); f != "table" && f != "json" {
		return cliutil.UsageError("steering replay: unknown format %q: use --format table or json", f)
	}
	var file *steering.Policy
	if name := c.String("policy"); name != "" { // before connecting: a typo fails fast
		b, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("cannot read the steering policy: %w", err)
		}
		if file, err = steering.ParsePolicy(name, b); err != nil {
			return err
		}
	}
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	p := file
	if p == nil {
		if p, _, _, err = steering.LoadPolicy(c.Context, conn); err != nil {
			return err
		}
	}
	if _, ok := p.Pool(c.String("pool")); !ok {
		return cliutil.UsageError("unknown pool %q: the policy has %s", c.String("pool"), strings.Join(policyPools(p), ", "))
	}
	// Today's agent countries: a move since the window is not replayed.
	countries, err := store.AgentCountries(c.Context, conn)
	if err != nil {
		return err
	}
	progress := progressTo(c.App.ErrWriter)
	r, err := steering.Replay(c.Context, conn, p, c.String("pool"), from, to, c.Duration("every"), countries, progress)
	if err != nil {
		return err
	}
	if c.String("format") == "json" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("cannot encode the replay of pool %s: %w", r.Pool, err)
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s\n", b)
		return err
	}
	return printReplay(c.App.Writer, r, c.Bool("changes"))
}

// replayWindow reads --since, --until and --every.
func replayWindow(c *cli.Context, now time.Time) (from, to time.Time, err error) {
	if c.Duration("since") <= 0 {
		return from, to, cliutil.UsageError("steering replay: --since must be positive, such as --since 24h")
	}
	if c.Duration("every") < time.Second {
		return from, to, cliutil.UsageError("steering replay: --every must be at least 1s, such as --every 15s")
	}
	from, to = now.Add(-c.Duration("since")), now
	if u := c.String("until"); u != "" {
		if t, err := time.Parse(time.RFC3339, u); err == nil {
			to = t
		} else if d, err := time.ParseDuration(u); err == nil && d >= 0 {
			to = now.Add(-d)
		} else {
			return from, to, cliutil.UsageError("steering replay: --until %q is neither an RFC 3339 time (2026-12-01T10:00:00Z) nor a duration ago (2h)", u)
		}
	}
	if !to.After(from) {
		return from, to, cliutil.UsageError("steering replay: --until %s is not after --since (%s)", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	return from, to, nil
}

// progressTo reports every 5% on w when w is a terminal, else not at all:
// a log or a pipe wants the result only.
func progressTo(w io.Writer) func(done, total int) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	shown := -1
	return func(done, total int) {
		if step := done * 20 / total; step != shown {
			shown = step
			fmt.Fprintf(w, "\rreplaying: %d%% (%d of %d rounds)", done*100/total, done, total)
		}
		if done == total {
			fmt.Fprintln(w)
		}
	}
}

// printReplay writes the summary line and a table of the final weights.
func printReplay(w io.Writer, r *steering.ReplayReport, changes bool) error {
	var per []string
	for _, sr := range r.Scopes {
		per = append(per, fmt.Sprintf("%s %d", sr.Scope, sr.Changes))
	}
	decisions := "decisions"
	if r.ChangedRounds == 1 {
		decisions = "decision"
	}
	fmt.Fprintf(w, "replayed %d rounds from %s to %s every %v: %d %s changed weights; changes per scope: %s\n",
		r.Rounds, r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339), shortDuration(r.Every), r.ChangedRounds, decisions, strings.Join(per, ", "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scope\tmember\tweight\tstate\tdown_rounds\tchanges")
	for _, sr := range r.Scopes {
		last := sr.Published[len(sr.Published)-1]
		final, published := r.Final.Scope(sr.Scope)
		for i, m := range r.Members {
			state := "-" // the scope had no rows at the end; routers fall back to its parent
			if published {
				state = final.Members[i].State
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", sr.Scope, m, last.Weights[m], state, sr.DownRounds[m], sr.Changes)
		}
	}
	if err := tw.Flush(); err != nil || !changes {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "at\tscope\trule\t%s\n", strings.Join(r.Members, "\t"))
	for _, sr := range r.Scopes {
		for _, p := range sr.Published {
			ws := make([]string, len(r.Members))
			for i, m := range r.Members {
				ws[i] = strconv.Itoa(p.Weights[m])
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.At.UTC().Format(time.RFC3339), sr.Scope, p.Rule, strings.Join(ws, "\t"))
		}
	}
	return tw.Flush()
}

// shortDuration writes 1m rather than Go's 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
