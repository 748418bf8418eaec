package probe

import (
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

func TestValidateHTTPProto(t *testing.T) {
	for _, tc := range []struct {
		target string
		o      HTTPOptions
		want   string
	}{
		{"https://example.com/", HTTPOptions{Proto: "h3"}, ""},
		{"http://example.com/", HTTPOptions{Proto: "h2", ThroughputMinBytes: 1 << 20}, ""},
		{"http://example.com/", HTTPOptions{Proto: "h3"}, "cannot use proto h3 for http://example.com/: HTTP/3 runs over QUIC"},
		{"https://example.com/", HTTPOptions{Proto: "H3"}, `unknown proto "H3" (use auto, h1, h2 or h3)`},
		{"https://example.com/", HTTPOptions{ThroughputMinBytes: -5}, "throughput_min_bytes -5 is negative"},
	} {
		c := Check{Name: "h", Kind: result.KindHTTP, Target: tc.target, Interval: time.Minute, HTTP: tc.o}
		err := c.Validate(nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%s %+v: got %v, want %q", tc.target, tc.o, err, tc.want)
		}
	}
}
