package probe

// TCPOptions are the options of a tcp check.
type TCPOptions struct{}
