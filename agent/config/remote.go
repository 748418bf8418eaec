package config

import (
	"github.com/meridian-net/meridian/agent/probe"
	checkdef "github.com/meridian-net/meridian/internal/probe"
)

// ParseChecks decodes and validates a remote checks document (the YAML the
// collector serves at GET /v1/agent/config) as internal/probe.ParseChecks
// does for the collector, and also refuses kinds this build has no probe
// for. name prefixes errors as in "name:line: …".
func ParseChecks(name string, b []byte) ([]checkdef.Check, error) {
	return checkdef.ParseChecks(name, b, probe.Has)
}
