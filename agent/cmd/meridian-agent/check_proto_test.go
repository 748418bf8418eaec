package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/http3"
)

// --proto and --transport reach the probes: `check http --proto h3` speaks
// HTTP/3 to a local QUIC server.
func TestCheckProtoH3(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(nil) // only for its certificate
	tlsSrv.Close()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h3 := &http3.Server{TLSConfig: http3.ConfigureTLSConfig(tlsSrv.TLS.Clone()),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "quic") })}
	go h3.Serve(udp)
	t.Cleanup(func() { h3.Close(); udp.Close() })

	out, errs, code := runCLI(t, context.Background(), "check", "http", "https://"+udp.LocalAddr().String()+"/", "--proto", "h3", "--insecure")
	if code != 0 {
		t.Fatalf("got exit %d (%s), want 0", code, errs)
	}
	for _, want := range []string{`proto +HTTP/3.0`, `tls alpn +h3`, `connect +\d+\.\d\d ms`, `tls +\d+\.\d\d ms`, `ttfb +\d+\.\d\d ms`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Errorf("got table\n%s\nwant a row matching %q", out, want)
		}
	}
}

func TestCheckProtoUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "http", "http://127.0.0.1:1/", "--proto", "h3"}, "HTTP/3 runs over QUIC"},
		{[]string{"check", "http", "https://127.0.0.1:1/", "--proto", "h4"}, `unknown proto "h4"`},
		{[]string{"check", "dns", "example.com", "--transport", "quic"}, `unknown transport "quic"`},
		{[]string{"check", "dns", "example.com", "--transport", "dot"}, "transport dot needs resolvers"},
		{[]string{"check", "dns", "example.com", "--transport", "dot", "--resolver", "https://dns.test/dns-query"}, "a URL only with --transport doh"},
		{[]string{"check", "dns", "example.com", "--transport", "doh", "--resolver", "http://dns.test/dns-query"}, "want an https:// URL"},
	} {
		_, errs, code := runCLI(t, context.Background(), tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: got exit %d, stderr %q; want exit 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}
