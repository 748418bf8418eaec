package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"
)

// cloudInitSample are values as an operator would give them.
var cloudInitSample = map[string]string{
	"collector_url": "https://collector.example.com",
	"agent_token":   "mrd_0123456789abcdef",
	"agent_name":    "ams-1",
	"agent_region":  "eu-west",
	"binary_url":    "https://downloads.example.com/v1.2.3/meridian-agent-linux-amd64",
	"binary_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
}

// renderTemplate renders a templatefile() template as Terraform does (HCL's
// template language) with vars; it fails if the template uses anything else.
func renderTemplate(t *testing.T, path string, vars map[string]string) []byte {
	t.Helper()
	src := readFile(t, path)
	expr, diags := hclsyntax.ParseTemplate(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("templatefile would refuse %s: %v", path, diags)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}}
	for k, v := range vars {
		ctx.Variables[k] = cty.StringVal(v)
	}
	val, diags := expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("cannot render %s: %v", path, diags)
	}
	return []byte(val.AsString())
}

// templateVars returns the names a template refers to.
func templateVars(t *testing.T, path string) []string {
	t.Helper()
	expr, diags := hclsyntax.ParseTemplate(readFile(t, path), path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	seen := map[string]bool{}
	for _, tr := range expr.Variables() {
		seen[tr.RootName()] = true
	}
	return sortedKeys(seen)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var placeholderRE = regexp.MustCompile(`\$\{[a-z][a-z0-9_]*\}`)

func TestCloudInitPlaceholders(t *testing.T) {
	path := filepath.Join(repo(t), "deploy/cloud-init/agent.yaml")
	src := string(readFile(t, path))
	// Plain ${name} only: then envsubst (deploy/README.md) and templatefile()
	// render the same file.
	if strings.Contains(src, "%{") || strings.Contains(src, "$${") {
		t.Errorf("%s uses template directives or escapes; keep plain ${name} placeholders", path)
	}
	if n, m := strings.Count(src, "${"), len(placeholderRE.FindAllString(src, -1)); n != m {
		t.Errorf("%s: %d interpolations, %d of them plain ${name}", path, n, m)
	}
	if got, want := templateVars(t, path), sortedKeys(cloudInitSample); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("placeholders: got %v, want %v", got, want)
	}
}

func TestCloudInitSchema(t *testing.T) {
	ci := needTool(t, "cloud-init", "cloud-init")
	rendered := renderTemplate(t, filepath.Join(repo(t), "deploy/cloud-init/agent.yaml"), cloudInitSample)
	if err := cloudInitValid(t, ci, rendered); err != nil {
		t.Fatal(err)
	}
	// The same check must fail broken user-data, or it proves nothing.
	for name, edit := range map[string][2]string{
		"misspelt file key":      {"- path: /etc/meridian/agent.env", "- paht: /etc/meridian/agent.env"},
		"misspelt top-level key": {"runcmd:", "runcmds:"},
		"wrong type":             {"system: true", "system: sure"},
	} {
		bad := bytes.Replace(rendered, []byte(edit[0]), []byte(edit[1]), 1)
		if bytes.Equal(bad, rendered) {
			t.Fatalf("%s: no %q to break", name, edit[0])
		}
		err := cloudInitValid(t, ci, bad)
		if err == nil {
			t.Errorf("%s: broken user-data passed the check", name)
			continue
		}
		t.Logf("%s: refused: %s", name, strings.Join(strings.Fields(err.Error()), " "))
	}
}

// cloudInitValid runs `cloud-init schema` on user-data and, since cloud-init
// 22.4 ignores top-level keys it does not know, checks those against its
// schema too.
func cloudInitValid(t *testing.T, ci string, userData []byte) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "user-data.yaml")
	if err := os.WriteFile(f, userData, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(ci, "schema", "--config-file", f).CombinedOutput(); err != nil {
		return fmt.Errorf("cloud-init schema: %v\n%s", err, out)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return err
	}
	known := cloudInitKeys(t)
	for k := range doc {
		if !known[k] {
			return fmt.Errorf("top-level key %s: cloud-init does not know it", k)
		}
	}
	return nil
}

// cloudInitKeys reads the top-level keys cloud-init's own JSON schema
// defines (base_config and every module's).
func cloudInitKeys(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob("/usr/lib/python3*/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json")
	if len(files) == 0 {
		t.Fatal("cloud-init's schema-cloud-config-v1.json not found: install cloud-init with `deploy/deps.sh cloud-init` (as root)")
	}
	var schema struct {
		Defs  map[string]struct{ Properties map[string]any } `json:"$defs"`
		AllOf []struct {
			Ref string `json:"$ref"`
		} `json:"allOf"`
	}
	if err := json.Unmarshal(readFile(t, files[0]), &schema); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, r := range schema.AllOf {
		for k := range schema.Defs[strings.TrimPrefix(r.Ref, "#/$defs/")].Properties {
			keys[k] = true
		}
	}
	if !keys["runcmd"] || !keys["write_files"] {
		t.Fatalf("cannot read the top-level keys from %s", files[0])
	}
	return keys
}

func TestCloudInitMatchesUnit(t *testing.T) {
	rendered := renderTemplate(t, filepath.Join(repo(t), "deploy/cloud-init/agent.yaml"), cloudInitSample)
	var doc struct {
		Users      []any `yaml:"users"`
		WriteFiles []struct {
			Path, Content string
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(rendered, &doc); err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(repo(t), "deploy/systemd/meridian-agent.service")
	u := mustParseUnit(t, unitPath)
	files := map[string]string{}
	for _, f := range doc.WriteFiles {
		files[f.Path] = f.Content
	}
	if files["/etc/systemd/system/meridian-agent.service"] != string(readFile(t, unitPath)) {
		t.Errorf("the unit in the user-data differs from deploy/systemd/meridian-agent.service: copy it again, indented")
	}
	env := files[u.get("EnvironmentFile")]
	for _, k := range []string{"MERIDIAN_COLLECTOR=" + cloudInitSample["collector_url"], "MERIDIAN_TOKEN=" + cloudInitSample["agent_token"]} {
		if !strings.Contains(env, k+"\n") {
			t.Errorf("the unit's EnvironmentFile %s lacks %s", u.get("EnvironmentFile"), k)
		}
	}
	if !strings.Contains(files["/etc/meridian/agent.yml"], "region: "+cloudInitSample["agent_region"]) {
		t.Errorf("agent.yml does not carry the region")
	}
	// What the unit's ExecStartPre will say of it on the VPS.
	cfg := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(cfg, []byte(files["/etc/meridian/agent.yml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(agentBinary(t), "check-config", "--config", cfg).CombinedOutput(); err != nil {
		t.Errorf("meridian-agent check-config on the user-data's agent.yml: %v\n%s", err, out)
	}
	if !strings.Contains(string(rendered), "  - name: "+u.get("User")+"\n") {
		t.Errorf("the user-data does not create the unit's user %s", u.get("User"))
	}
}
