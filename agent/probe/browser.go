package probe

// BrowserOptions are the options of a browser check.
type BrowserOptions struct{}
