package steering

import (
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Explain writes, for people, why scope has its weights in d: the figures
// per member, the rule that fired and what would change the weights. k are
// the knobs d was computed with (the pool's Knobs()).
func Explain(d *Decision, scope string, k Knobs) string {
	sd, ok := d.Scope(scope)
	if !ok {
		var have []string
		for _, s := range d.Scopes {
			have = append(have, s.Scope)
		}
		return fmt.Sprintf("pool %s has no decision for scope %s (published: %s)\n", d.Pool, scope, strings.Join(have, ", "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pool %s (%s), scope %s, computed %s\n", d.Pool, d.DNSName, sd.Scope, clock(d.ComputedAt))
	if len(sd.Fallback) > 0 {
		fmt.Fprintf(&b, "figures from %s: too few samples in %s\n", sd.FiguresFrom, strings.Join(sd.Fallback, ", "))
	}
	changed := "unchanged this round"
	if sd.Changed {
		changed = "changed this round"
	}
	fmt.Fprintf(&b, "rule %s; weights last changed %s (%s)\n\n", sd.Rule, clock(sd.ChangedAt), changed)
	writeTable(&b, sd, k)
	b.WriteString("\nwhat would change it:\n")
	for _, line := range whatIf(sd, k, d.ComputedAt) {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

func clock(t time.Time) string { return t.UTC().Format(time.TimeOnly) + " UTC" }

func writeTable(b *strings.Builder, sd *ScopeDecision, k Knobs) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "member\tweight\tstate\tscore ms\traw ms\t%s ms\terrors\tsamples\trum+syn\t\n", quantileLabel(k.Quantile))
	for _, m := range sd.Members {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.1f%%\t%d\t%d+%d\t\n",
			m.Name, m.Weight, m.State, fmtMs(m.ScoreMs), fmtMs(m.RawMs), fmtMs(m.Q), 100*m.ErrorRate, m.Samples, m.RUMSamples, m.SyntheticSamples)
	}
	tw.Flush()
	for _, m := range sd.Members {
		fmt.Fprintf(b, "  %s: %s\n", m.Name, m.Reason)
	}
}

// whatIf lists what would move the weights, rule by rule.
func whatIf(sd *ScopeDecision, k Knobs, computedAt time.Time) []string {
	var out []string
	switch sd.Rule {
	case RuleFailOpen:
		return []string{"the weights stay as they are until a member that is not down has data again"}
	case RuleHome:
		out = append(out, homeWhatIf(sd, k))
	case RuleHold:
		when := ""
		if until := sd.ChangedAt.Add(k.MinDwell); until.After(computedAt) {
			when = " after " + clock(until)
		}
		out = append(out, fmt.Sprintf("held: weights change%s once one moves by ≥ %d points, triples, falls to a third or goes to or from 0 (a member going down is published at once)",
			when, k.hysteresis(len(sd.Members))))
		fallthrough
	default:
		out = append(out, scoreWhatIf(sd, k)...)
	}
	if len(sd.Fallback) > 0 {
		out = append(out, fmt.Sprintf("%s gets its own figures once every member has ≥ %d samples there in the %v window", sd.Scope, k.MinSamples, k.Window))
	}
	for _, m := range sd.Members {
		if m.State == StateDown {
			out = append(out, fmt.Sprintf("%s comes back after %d rounds below %.0f%% errors, then gains at most %d points a round from the floor",
				m.Name, k.UpAfter, 100*k.DownErrorRate, k.RampPercent))
		}
	}
	return out
}

func homeWhatIf(sd *ScopeDecision, k Knobs) string {
	h, best := sd.Members[0], math.NaN()
	for _, m := range sd.Members {
		if m.Weight > h.Weight {
			h = m
		}
		if m.State != StateDown && !(m.ScoreMs >= best) {
			best = m.ScoreMs
		}
	}
	return fmt.Sprintf("pinned to %s while it is up: released if its score falls more than %s ms behind the best (now %s ms) or its errors pass %.0f%% (now %.1f%%)",
		h.Name, fmtMs(k.HomeReleaseMs), fmtMs(h.ScoreMs-best), 50*k.DownErrorRate, 100*h.ErrorRate)
}

// scoreWhatIf solves the score rule for the score at which each member's
// weight would move by the hysteresis, the others staying put.
func scoreWhatIf(sd *ScopeDecision, k Knobs) []string {
	best, n := math.NaN(), 0
	for _, m := range sd.Members {
		if m.State != StateDown {
			n++
			if !(m.ScoreMs >= best) {
				best = m.ScoreMs
			}
		}
	}
	free, step := float64(100-n*k.FloorPercent), float64(max(k.hysteresis(len(sd.Members)), 1))
	var out []string
	for i, m := range sd.Members {
		if m.State == StateDown || math.IsNaN(m.ScoreMs) {
			continue
		}
		others := 0.0
		for j, o := range sd.Members {
			if j != i && o.State != StateDown && !math.IsNaN(o.ScoreMs) {
				others += math.Exp(-(o.ScoreMs - best) / k.TauMs)
			}
		}
		verb, target := "gain", float64(m.Weight)+step
		if m.ScoreMs == best {
			verb, target = "lose", float64(m.Weight)-step
		}
		y := (target - float64(k.FloorPercent)) / free
		if others == 0 || y <= 0 || y >= 1 {
			continue
		}
		x := best - k.TauMs*math.Log(y*others/(1-y))
		dir := "fell below"
		if verb == "lose" {
			dir = "rose above"
		}
		q := fmt.Sprintf("%s %s ms at %.1f%% errors", quantileLabel(k.Quantile), fmtMs(x-m.ErrorRate*k.ErrorPenaltyMs), 100*m.ErrorRate)
		if x-m.ErrorRate*k.ErrorPenaltyMs <= 0 {
			q = fmt.Sprintf("out of reach while its %.1f%% errors cost %s ms", 100*m.ErrorRate, fmtMs(m.ErrorRate*k.ErrorPenaltyMs))
		}
		out = append(out, fmt.Sprintf("%s would %s %d points if its score %s %s ms (%s)", m.Name, verb, int(step), dir, fmtMs(x), q))
	}
	return out
}
