package server

import (
	"net/http"
	"time"
)

// Timeouts bound how long a client may take, so slow or stalled ones are
// cut instead of holding a connection (and its memory) for ever. Zero
// values take the defaults.
type Timeouts struct {
	ReadHeader time.Duration // request line and headers (default 10s)
	Read       time.Duration // a whole request, body included (default 1m: agents' batches on slow links)
	Idle       time.Duration // a kept-alive connection between requests (default 2m)
}

// NewHTTPServer is the collector's http.Server for handler. Beacons get a
// shorter body deadline of their own (Limits.BeaconReadTimeout).
func NewHTTPServer(handler http.Handler, t Timeouts) *http.Server {
	if t.ReadHeader <= 0 {
		t.ReadHeader = 10 * time.Second
	}
	if t.Read <= 0 {
		t.Read = time.Minute
	}
	if t.Idle <= 0 {
		t.Idle = 2 * time.Minute
	}
	return &http.Server{Handler: handler, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, IdleTimeout: t.Idle}
}
