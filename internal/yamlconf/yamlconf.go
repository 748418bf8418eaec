// Package yamlconf decodes YAML files strictly and reports errors as "file:line: message".
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrEmpty is returned by Decode for a document with nothing in it; callers
// word it for their file ("the config is empty (want …)").
var ErrEmpty = errors.New("the document is empty")

// Doc is a decoded document's node tree, kept to find the line of a key
// when validation fails after decoding.
type Doc struct {
	name string
	root *yaml.Node
}

// Decode decodes b into v refusing unknown fields; name prefixes errors as
// in "name:line: …". An empty document returns ErrEmpty and no Doc.
func Decode(name string, b []byte, v any) (*Doc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, Error(name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, Error(name, err)
	}
	return &Doc{name: name, root: &root}, nil
}

// Node returns the node at path (mapping keys or sequence indexes), or nil.
// Callers use it to see which keys a file set, or to decode a part again.
func (d *Doc) Node(path ...string) *yaml.Node {
	n := d.top()
	for _, p := range path {
		if n = value(n, p); n == nil {
			return nil
		}
	}
	return n
}

func (d *Doc) top() *yaml.Node {
	if n := d.root; n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return nil
}

var (
	lineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)
	unknownRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
)

// friendlier rewords yaml.v3's messages for the two mistakes people make.
func friendlier(m string) string {
	if sub := unknownRE.FindStringSubmatch(m); sub != nil {
		return fmt.Sprintf("unknown field %q in %s (check the spelling and the indentation)", sub[1], sub[2])
	}
	if strings.HasSuffix(m, "into time.Duration") {
		return m + " (write durations with a unit, such as 10s)"
	}
	return m
}

// Error turns yaml.v3's "yaml: unmarshal errors:\n  line 3: …" into
// "name:3: …", one error per line.
func Error(name string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			out[i] = name + ":" + sub[1] + ": " + friendlier(m[len(sub[0]):])
		} else {
			out[i] = name + ": " + strings.TrimPrefix(m, "yaml: ")
		}
	}
	return errors.New(strings.Join(out, "\n"))
}

// Errorf prefixes msg with name:line of the deepest node on path that
// exists (path elements are mapping keys or sequence indexes; an empty
// element ends the path).
func (d *Doc) Errorf(msg string, path ...string) error {
	line := 0
	n := d.top()
	if n != nil {
		line = n.Line
	}
	for _, p := range path {
		if p == "" {
			break
		}
		next := child(n, p)
		if next == nil {
			break
		}
		n, line = next, next.Line
	}
	if line == 0 {
		return fmt.Errorf("%s: %s", d.name, msg)
	}
	return fmt.Errorf("%s:%d: %s", d.name, line, msg)
}

// child finds key under n for an error's line: for a mapping entry with a
// scalar value it is the key itself, so an empty value still points somewhere.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				k, v := n.Content[i], n.Content[i+1]
				if v.Kind == yaml.ScalarNode {
					return k
				}
				return &yaml.Node{Kind: v.Kind, Content: v.Content, Line: k.Line}
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

// value is the node under key itself (not the key), for Node.
func value(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}
