package probe

// ICMPOptions are the options of a icmp check.
type ICMPOptions struct{}
