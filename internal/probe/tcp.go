package probe

// DialOptions say how tcp and tls checks find and reach their target.
//
//	family: any        # any (default: the first address resolved), ip4, ip6, or both (one result
//	                   # per family; an address target gives one result whatever the family)
//	resolver: 1.1.1.1  # HOST[:PORT] to resolve the target with; default: the system resolver
type DialOptions struct {
	Family   string `yaml:"family"`
	Resolver string `yaml:"resolver"`
}

// TCPOptions are the options of a tcp check; its target is HOST:PORT.
//
//	tcp:
//	  family: both
type TCPOptions struct {
	DialOptions `yaml:",inline"`
}
