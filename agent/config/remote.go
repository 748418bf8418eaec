package config

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-net/meridian/agent/probe"
)

// ParseChecks decodes and validates a remote checks document: the YAML the
// collector serves at GET /v1/agent/config and `meridian agents config set`
// stores. It is a mapping with one key, checks, whose list has exactly the
// schema, defaults and validation of the checks in the agent's file; agent,
// collector, token and ship stay in the file and are refused here. name
// prefixes errors as in "name:line: …".
func ParseChecks(name string, b []byte) ([]probe.Check, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if len(bytes.TrimSpace(b)) == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the document is empty (want checks: with at least one check)", name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping with one key (checks)", name, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Value != "checks" {
			return nil, fmt.Errorf("%s:%d: unknown field %q in a remote checks document: only checks: is allowed (agent, collector, token and ship stay in the agent's file)", name, k.Line, k.Value)
		}
	}
	cfg, err := Parse(name, b)
	if err != nil {
		return nil, err
	}
	return cfg.Checks, nil
}
