package probe

import "time"

// ICMPOptions are the options of an icmp check; its target is a host name
// or an address.
//
//	icmp:
//	  count: 3           # echoes per run (default 3)
//	  interval: 200ms    # between echoes (default 200ms; shrunk to fit the timeout)
//	  privileged: true   # raw ICMP socket; default true when running as root,
//	                     # false sends unprivileged "UDP" pings (net.ipv4.ping_group_range)
//	  size: 24           # payload bytes, at least 24 (pro-bing's timestamp and tracker)
//	  family: any        # any, ip4, ip6 or both (one result per family)
//	  resolver: 1.1.1.1  # HOST[:PORT]; default the system resolver
type ICMPOptions struct {
	DialOptions `yaml:",inline"`
	Count       int           `yaml:"count"`
	Interval    time.Duration `yaml:"interval"`
	Privileged  *bool         `yaml:"privileged"`
	Size        int           `yaml:"size"`
}
