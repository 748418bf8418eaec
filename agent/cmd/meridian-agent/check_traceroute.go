package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/result"
)

// traceFlags are check's flags for the traceroute kind, named as mtr's.
func traceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "udp", Usage: "traceroute: probe with UDP datagrams (default ICMP echo)"},
		&cli.BoolFlag{Name: "tcp", Usage: "traceroute: probe with TCP SYNs (to --port, default 80)"},
		&cli.IntFlag{Name: "port", Usage: "traceroute: destination `PORT` for --udp or --tcp"},
		&cli.IntFlag{Name: "probes", Usage: "traceroute: `N` probes per hop (default 3)"},
		&cli.IntFlag{Name: "max-hops", Usage: "traceroute: give up after `N` hops (default 30)"},
		&cli.BoolFlag{Name: "rdns", Usage: "traceroute: look up each hop's name"},
	}
}

// traceOptions sets a traceroute check's options from the flags, checked
// as a configured check's would be.
func traceOptions(c *cli.Context, ck *probe.Check) error {
	o := &ck.Traceroute
	switch {
	case c.Bool("udp") && c.Bool("tcp"):
		return cliutil.UsageError("--udp and --tcp: pick one, or neither to trace with ICMP")
	case c.Bool("udp"):
		o.Protocol = "udp"
	case c.Bool("tcp"):
		o.Protocol = "tcp"
	}
	o.Port, o.Probes, o.MaxHops = c.Int("port"), c.Int("probes"), c.Int("max-hops")
	o.ReverseDNS, o.Resolver = c.Bool("rdns"), c.String("resolver")
	if ck.Kind != result.KindTraceroute {
		return nil
	}
	if err := o.WithDefaults().Validate(); err != nil {
		return cliutil.UsageError("traceroute: %v", err)
	}
	return nil
}

// printHops prints a traceroute's path as mtr's report does: one line per
// hop, "???" where no probe was answered.
func printHops(w io.Writer, r *result.Result) {
	t := r.Traceroute
	if t == nil {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "hop\thost\tloss%%\tsnt\trcv\tbest\tavg\tworst\tstdev\t\n")
	ms := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", *v)
	}
	for _, h := range t.Hops {
		host := h.Addr
		switch {
		case host == "":
			host = "???"
		case h.Name != "":
			host = h.Name + " (" + h.Addr + ")"
		}
		fmt.Fprintf(tw, "%d.\t%s\t%.1f%%\t%d\t%d\t%s\t%s\t%s\t%s\t\n", h.TTL, host, h.LossPct, h.Sent, h.Received,
			ms(h.MinMs), ms(h.AvgMs), ms(h.MaxMs), ms(h.StddevMs))
	}
}

// traceProto names what a trace probed with: "udp/33434", "icmp".
func traceProto(t *result.Traceroute) string {
	if t.Port == 0 {
		return t.Proto
	}
	return fmt.Sprintf("%s/%d", t.Proto, t.Port)
}
