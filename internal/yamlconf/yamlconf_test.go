package yamlconf

import (
	"errors"
	"testing"
	"time"
)

type conf struct {
	Name  string        `yaml:"name"`
	Every time.Duration `yaml:"every"`
	Items []struct {
		ID   int      `yaml:"id"`
		Tags []string `yaml:"tags"`
	} `yaml:"items"`
}

const doc = `name: a
items:
  - id: 1
  - id: 2
    tags:
      - x
`

func TestErrorf(t *testing.T) {
	var c conf
	d, err := Decode("c.yml", []byte(doc), &c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path []string
		want string
	}{
		{nil, "c.yml:1: bad"},
		{[]string{"name"}, "c.yml:1: bad"},
		{[]string{"items", "1"}, "c.yml:4: bad"},
		{[]string{"items", "1", "tags"}, "c.yml:5: bad"},
		{[]string{"items", "1", "tags", "0"}, "c.yml:6: bad"},
		{[]string{"items", "1", "nope"}, "c.yml:4: bad"},
		{[]string{"items", "7"}, "c.yml:2: bad"},
		{[]string{"items", "-1"}, "c.yml:2: bad"},
		{[]string{"items", "", "tags"}, "c.yml:2: bad"},
	} {
		if got := d.Errorf("bad", tc.path...).Error(); got != tc.want {
			t.Errorf("Errorf(%q): got %q, want %q", tc.path, got, tc.want)
		}
	}
	if n := d.Node("items", "1", "id"); n == nil || n.Value != "2" || d.Node("items", "9") != nil {
		t.Errorf("Node: got %v, want the scalar 2 and nil for a missing index", n)
	}
}

func TestDecodeErrors(t *testing.T) {
	var c conf
	if _, err := Decode("c.yml", []byte("# nothing\n"), &c); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: got %v, want ErrEmpty", err)
	}
	for in, want := range map[string]string{
		"name: a\nnmae: b\n":          `c.yml:2: unknown field "nmae" in yamlconf.conf (check the spelling and the indentation)`,
		"every: 10\n":                 "c.yml:1: cannot unmarshal !!int `10` into time.Duration (write durations with a unit, such as 10s)",
		"items: [{id: x}]\nnope: 1\n": "c.yml:1: cannot unmarshal !!str `x` into int\nc.yml:2: unknown field \"nope\" in yamlconf.conf (check the spelling and the indentation)",
		"name: [\n":                   "c.yml:1: did not find expected node content",
	} {
		if _, err := Decode("c.yml", []byte(in), &c); err == nil || err.Error() != want {
			t.Errorf("%q:\ngot  %v\nwant %s", in, err, want)
		}
	}
}
