package probe

// DNSOptions are the options of a dns check.
type DNSOptions struct{}
