package probe

import (
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// The collector refuses a dns check the agent could not run, without
// linking the probe.
func TestValidateDNS(t *testing.T) {
	for _, tc := range []struct {
		o    DNSOptions
		want string // "" for valid
	}{
		{DNSOptions{}, ""},
		{DNSOptions{Transport: "TCP"}, ""},
		{DNSOptions{Transport: "dot", Resolvers: []string{"1.1.1.1"}}, ""},
		{DNSOptions{Transport: "doh", Resolvers: []string{"https://dns.test/q", "dns.test:8443"}, DoHMethod: "get"}, ""},
		{DNSOptions{Transport: "quic"}, `unknown transport "quic" (use udp, tcp, dot or doh)`},
		{DNSOptions{Transport: "doh"}, "transport doh needs resolvers: name the encrypted resolver, such as https://cloudflare-dns.com/dns-query"},
		{DNSOptions{Transport: "doh", Resolvers: []string{"ftp://dns.test/"}}, `doh resolver "ftp://dns.test/": want an https:// URL`},
		{DNSOptions{Transport: "tcp", DoHMethod: "GET"}, "doh_method is for transport doh, not tcp"},
		{DNSOptions{Transport: "dot", Resolvers: []string{"1.1.1.1"}, CAFile: "/nonexistent.pem"}, "cannot read ca_file"},
	} {
		c := Check{Name: "d", Kind: result.KindDNS, Target: "example.com", Interval: time.Minute, DNS: tc.o}
		err := c.Validate(nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
		if fe, ok := err.(*FieldError); err != nil && (!ok || fe.Key != "dns") {
			t.Errorf("%+v: got %#v, want a FieldError on dns", tc.o, err)
		}
	}
}
