package probe

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-net/meridian/internal/yamlconf"
)

// ValidateChecks checks the list under the top-level key checks: of doc,
// defaults set: at least one check, unique names, and each check's
// Validate. Errors read "name:line: checks[i] (check name): …".
func ValidateChecks(doc *yamlconf.Doc, checks []Check, runnable func(kind string) bool) error {
	if len(checks) == 0 {
		return doc.Errorf("no checks: add at least one under checks:", "checks")
	}
	seen := map[string]int{}
	for i := range checks {
		c := &checks[i]
		at := func(key, msg string) error {
			prefix := fmt.Sprintf("checks[%d]", i)
			if c.Name != "" {
				prefix += fmt.Sprintf(" (%s)", c.Name)
			}
			return doc.Errorf(prefix+": "+msg, "checks", strconv.Itoa(i), key)
		}
		if j := seen[c.Name]; j > 0 && c.Name != "" {
			return at("name", fmt.Sprintf("name %q is already used by checks[%d]; names must be unique", c.Name, j-1))
		}
		if err := c.Validate(runnable); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				fe = &FieldError{Err: err}
			}
			return at(fe.Key, fe.Err.Error())
		}
		seen[c.Name] = i + 1
	}
	return nil
}

// ParseChecks decodes, defaults and validates a remote checks document:
// the YAML the collector serves at GET /v1/agent/config and `meridian
// agents config set` stores. It is a mapping with one key, checks, whose
// list has exactly the schema, defaults and validation of the checks in
// the agent's file; agent, collector, token and ship stay in the file and
// are refused here. name prefixes errors as in "name:line: …"; runnable is
// as for Check.Validate.
func ParseChecks(name string, b []byte, runnable func(kind string) bool) ([]Check, error) {
	var node yaml.Node
	if err := yaml.Unmarshal(b, &node); err != nil {
		return nil, yamlconf.Error(name, err)
	}
	if len(bytes.TrimSpace(b)) == 0 || len(node.Content) == 0 {
		return nil, fmt.Errorf("%s: the document is empty (want checks: with at least one check)", name)
	}
	root := node.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping with one key (checks)", name, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Value != "checks" {
			return nil, fmt.Errorf("%s:%d: unknown field %q in a remote checks document: only checks: is allowed (agent, collector, token and ship stay in the agent's file)", name, k.Line, k.Value)
		}
	}
	var v struct {
		Checks []Check `yaml:"checks"`
	}
	doc, err := yamlconf.Decode(name, b, &v)
	if err != nil {
		return nil, err
	}
	for i := range v.Checks {
		v.Checks[i].SetDefaults(filepath.Dir(name))
	}
	if err := ValidateChecks(doc, v.Checks, runnable); err != nil {
		return nil, err
	}
	return v.Checks, nil
}
