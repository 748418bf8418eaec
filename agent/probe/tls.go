package probe

// TLSOptions are the options of a tls check.
type TLSOptions struct{}
