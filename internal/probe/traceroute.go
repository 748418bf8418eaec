package probe

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// TracerouteOptions are the options of a traceroute check; its target is a
// host name or an address (the port, for udp and tcp, is an option).
//
//	traceroute:
//	  protocol: icmp       # icmp (default), udp, or tcp (SYN to port)
//	  port: 443            # udp default 33434, tcp default 80; not for icmp
//	  probes: 3            # probes per TTL (default 3): loss and min/avg/max/stddev per hop
//	  max_hops: 30         # highest TTL tried (default 30, at most 255)
//	  first_ttl: 1         # lowest TTL tried (default 1): skip hops you own
//	  probe_timeout: 1s    # how long each probe's answer may take (default 1s)
//	  reverse_dns: false   # look up each hop's name (default false)
//	  privileged: true     # raw sockets (root or CAP_NET_RAW); by default tried
//	                       # first, icmp falling back to ICMP datagram sockets
//	                       # (net.ipv4.ping_group_range); false: datagram only
//	  family: any          # any, ip4 (ip6 is not traced yet)
//	  resolver: 1.1.1.1    # HOST[:PORT]; default the system resolver
type TracerouteOptions struct {
	DialOptions  `yaml:",inline"`
	Protocol     string        `yaml:"protocol"`
	Port         int           `yaml:"port"`
	Probes       int           `yaml:"probes"`
	MaxHops      int           `yaml:"max_hops"`
	FirstTTL     int           `yaml:"first_ttl"`
	ProbeTimeout time.Duration `yaml:"probe_timeout"`
	ReverseDNS   bool          `yaml:"reverse_dns"`
	Privileged   *bool         `yaml:"privileged"`
}

// Traceroute defaults and limits.
const (
	DefaultTraceProtocol     = "icmp"
	DefaultTraceUDPPort      = 33434 // traceroute's classic base port
	DefaultTraceTCPPort      = 80
	DefaultTraceProbes       = 3
	DefaultTraceMaxHops      = 30
	DefaultTraceProbeTimeout = time.Second
	MaxTraceProbes           = 100 // per TTL; more is a flood, not a measurement
	MaxTraceTTL              = 255 // the TTL is one byte
)

// WithDefaults returns o with what it left out filled in.
func (o TracerouteOptions) WithDefaults() TracerouteOptions {
	if o.Protocol == "" {
		o.Protocol = DefaultTraceProtocol
	}
	o.Protocol = strings.ToLower(o.Protocol)
	if o.Port == 0 && o.Protocol == "udp" {
		o.Port = DefaultTraceUDPPort
	}
	if o.Port == 0 && o.Protocol == "tcp" {
		o.Port = DefaultTraceTCPPort
	}
	if o.Probes == 0 {
		o.Probes = DefaultTraceProbes
	}
	if o.MaxHops == 0 {
		o.MaxHops = DefaultTraceMaxHops
	}
	if o.FirstTTL == 0 {
		o.FirstTTL = 1
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = DefaultTraceProbeTimeout
	}
	return o
}

// Validate checks the options with defaults applied (WithDefaults).
func (o TracerouteOptions) Validate() error {
	switch {
	case o.Protocol != "icmp" && o.Protocol != "udp" && o.Protocol != "tcp":
		return fmt.Errorf("protocol %q is not icmp, udp or tcp", o.Protocol)
	case o.Protocol == "icmp" && o.Port != 0:
		return fmt.Errorf("port %d makes no sense for protocol icmp; use udp or tcp, or drop the port", o.Port)
	case o.Port < 0 || o.Port > 65535:
		return fmt.Errorf("port %d is out of range [1, 65535]", o.Port)
	case o.Probes < 1 || o.Probes > MaxTraceProbes:
		return fmt.Errorf("probes %d is out of range [1, %d]", o.Probes, MaxTraceProbes)
	case o.MaxHops < 1 || o.MaxHops > MaxTraceTTL:
		return fmt.Errorf("max_hops %d is out of range [1, %d]", o.MaxHops, MaxTraceTTL)
	case o.FirstTTL < 1 || o.FirstTTL > o.MaxHops:
		return fmt.Errorf("first_ttl %d is out of range [1, max_hops %d]", o.FirstTTL, o.MaxHops)
	case o.ProbeTimeout < time.Millisecond:
		return fmt.Errorf("probe_timeout %v is below 1ms", o.ProbeTimeout)
	case o.Privileged != nil && !*o.Privileged && o.Protocol != "icmp":
		return fmt.Errorf("protocol %s needs raw sockets (privileged: true, as root or with CAP_NET_RAW); "+
			"unprivileged traceroute is icmp only", o.Protocol)
	}
	switch strings.ToLower(o.Family) {
	case "", "any", "ip4":
	default:
		return fmt.Errorf("family %q: traceroute traces any (the first address resolved) or ip4", o.Family)
	}
	return nil
}

// validateTraceroute checks a traceroute check's target and options.
func validateTraceroute(c *Check) error {
	if _, _, err := net.SplitHostPort(c.Target); err == nil {
		return fieldErrorf("target", "target %q has a port; a traceroute target is a host name or address (set traceroute.port)", c.Target)
	}
	if err := c.Traceroute.WithDefaults().Validate(); err != nil {
		return &FieldError{Key: "traceroute", Err: err}
	}
	return nil
}
