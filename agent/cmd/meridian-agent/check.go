package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/result"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "run one probe now and print its result",
		ArgsUsage: "KIND TARGET",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the wire JSON, one result per line"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "give up after `D`"},
			&cli.BoolFlag{Name: "insecure", Usage: "do not verify TLS certificates (still describe them)"},
			&cli.StringFlag{Name: "ca", Usage: "trust the PEM certificates in `FILE` too"},
			&cli.StringFlag{Name: "resolver", Usage: "ask the DNS server at `HOST:PORT` (a URL with --transport doh)"},
			&cli.StringFlag{Name: "proto", Usage: "http: speak `P`: auto, h1, h2 or h3 (HTTP/3 over QUIC)"},
			&cli.StringFlag{Name: "transport", Usage: "dns: ask over `T`: udp, tcp, dot (DNS over TLS) or doh (DNS over HTTPS)"},
		}, traceFlags()...),
		Action: checkAction,
	}
}

func checkAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return cliutil.UsageError("check needs KIND and TARGET, as in: meridian-agent check http https://example.com/")
	}
	ck, err := cliCheck(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, ck.Timeout)
	defer cancel()
	results, err := probe.Run(ctx, ck)
	if err != nil {
		return cliutil.UsageError("%v", err)
	}
	agent, _ := os.Hostname()
	failed := ""
	for i, r := range results {
		r.Agent = agent
		if c.Bool("json") {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s\n", b)
		} else {
			if i > 0 {
				fmt.Fprintln(c.App.Writer)
			}
			printTable(c.App.Writer, r)
			printHops(c.App.Writer, r)
		}
		if !r.OK && failed == "" {
			failed = r.Error + ": " + r.ErrorMessage
		}
	}
	if failed != "" {
		return &cliutil.ExitError{Code: 1, Err: fmt.Errorf("measurement failed: %s", failed)}
	}
	return nil
}

func cliCheck(c *cli.Context) (*probe.Check, error) {
	kind, target := c.Args().Get(0), c.Args().Get(1)
	switch {
	case !result.KnownKind(kind):
		return nil, cliutil.UsageError("unknown kind %q: use one of %s", kind, strings.Join(result.Kinds, ", "))
	case probe.Probes[kind] == nil:
		return nil, cliutil.UsageError("kind %q has no probe in this build: use another kind or a newer build", kind)
	case c.Duration("timeout") <= 0:
		return nil, cliutil.UsageError("--timeout %v must be positive, such as 5s", c.Duration("timeout"))
	}
	ck := &probe.Check{Name: "check", Kind: kind, Target: target, Timeout: c.Duration("timeout")}
	ck.HTTP.InsecureSkipVerify = c.Bool("insecure")
	ck.HTTP.CAFile = c.String("ca")
	ck.HTTP.Proto = c.String("proto")
	ck.DNS.Transport = c.String("transport")
	ck.DNS.InsecureSkipVerify = c.Bool("insecure")
	ck.DNS.CAFile = c.String("ca")
	ck.TLS.InsecureSkipVerify = c.Bool("insecure")
	if ca := c.String("ca"); ca != "" {
		ck.TLS.TrustStores = map[string]string{"ca": ca}
	}
	if r := c.String("resolver"); r != "" {
		// A doh resolver is a URL, which the probe checks.
		doh := kind == result.KindDNS && strings.EqualFold(ck.DNS.Transport, "doh")
		if _, _, err := net.SplitHostPort(r); !doh && (err != nil || strings.Contains(r, "/")) {
			return nil, cliutil.UsageError("--resolver %q: want HOST:PORT, such as 1.1.1.1:53 (a URL only with --transport doh)", r)
		}
		ck.DNS.Resolvers = []string{r}
		for _, d := range []*probe.DialOptions{&ck.HTTP.DialOptions, &ck.TCP.DialOptions, &ck.TLS.DialOptions, &ck.ICMP.DialOptions} {
			d.Resolver = r
		}
	}
	if err := traceOptions(c, ck); err != nil {
		return nil, err
	}
	return ck, nil
}

// printTable prints one result as aligned field/value rows, present
// fields only.
func printTable(w io.Writer, r *result.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	row := func(field string, value any) {
		switch v := value.(type) {
		case string:
			if v == "" {
				return
			}
		case *float64:
			if v == nil {
				return
			}
			value = fmt.Sprintf("%.2f ms", *v)
		case int:
			if v == 0 {
				return
			}
		}
		fmt.Fprintf(tw, "%s\t%v\n", field, value)
	}
	row("kind", r.Kind)
	row("target", r.Target)
	if r.OK {
		row("result", "ok")
	} else {
		row("result", "FAILED "+r.Error)
		row("error", r.ErrorMessage)
	}
	row("dns", r.DNSMs)
	row("connect", r.ConnectMs)
	row("tls", r.TLSMs)
	row("ttfb", r.TTFBMs)
	row("transfer", r.TransferMs)
	row("total", r.TotalMs)
	if h := r.HTTP; h != nil {
		row("status", h.Status)
		row("proto", h.Proto)
		if h.Bytes != nil {
			row("bytes", fmt.Sprint(*h.Bytes))
		}
		row("remote ip", h.RemoteIP)
		row("dns source", h.DNSSource)
		row("location", h.Location)
		row("alt-svc", h.AltSvc)
		if h.ThroughputBps != nil {
			row("throughput", fmt.Sprintf("%.2f Mbit/s", *h.ThroughputBps/1e6))
		}
	}
	if t := r.TLS; t != nil {
		row("tls version", t.TLSVersion)
		row("tls cipher", t.TLSCipher)
		row("tls alpn", t.TLSALPN)
		row("tls sni", t.TLSSNI)
		row("cert subject", t.CertSubject)
		row("cert issuer", t.CertIssuer)
		row("cert sans", strings.Join(t.CertSANs, ", "))
		if t.CertNotAfter != nil {
			row("cert not after", t.CertNotAfter.Format(time.RFC3339))
		}
		if t.CertDaysLeft != nil {
			row("cert days left", fmt.Sprintf("%.1f", *t.CertDaysLeft))
		}
	}
	if d := r.DNS; d != nil {
		row("resolver", d.Resolver)
		row("transport", d.Transport)
		row("qtype", d.QType)
		row("rcode", d.Rcode)
		row("answers", strings.Join(d.Answers, ", "))
	}
	if t := r.Traceroute; t != nil {
		row("trace", fmt.Sprintf("%s, %d hops, destination %s", traceProto(t), len(t.Hops), map[bool]string{true: "reached", false: "not reached"}[t.Reached]))
	}
	if p := r.ICMP; p != nil {
		row("ping", fmt.Sprintf("%d sent, %d received, %.1f%% loss", p.Sent, p.Received, p.LossPct))
		row("ping min", p.MinMs)
		row("ping avg", p.AvgMs)
		row("ping max", p.MaxMs)
	}
}
