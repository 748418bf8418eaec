package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoProbe: the collector validates check configs with
// internal/probe and links neither the agent's packages nor the probes'
// libraries (Chromium's DevTools client, ICMP, DNS, QUIC); one stray import
// brings them all back and megabytes with them.
func TestLinksNoProbe(t *testing.T) {
	const pkg = "github.com/meridian-net/meridian/collector/cmd/meridian"
	banned := []string{
		"github.com/chromedp",
		"github.com/prometheus-community/pro-bing",
		"github.com/miekg/dns",
		"github.com/quic-go/quic-go",
		"github.com/meridian-net/meridian/agent",
	}
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps %s named %d packages, want its whole graph:\n%s", pkg, len(deps), out)
	}
	for _, b := range banned {
		var linked []string
		for _, dep := range deps {
			if dep == b || strings.HasPrefix(dep, b+"/") {
				linked = append(linked, dep)
			}
		}
		if len(linked) > 0 {
			t.Errorf("meridian links %d packages of %s (%s …): validate checks with internal/probe, not the agent's packages; "+
				"`go list -f '{{.ImportPath}}: {{.Imports}}' -deps ./collector/cmd/meridian` shows who imports them", len(linked), b, linked[0])
		}
	}
}
