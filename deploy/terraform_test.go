package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// tfFiles parses every .tf file of deploy/terraform as Terraform does.
func tfFiles(t *testing.T) (dir string, files map[string]*hclsyntax.Body) {
	t.Helper()
	dir = filepath.Join(repo(t), "deploy/terraform")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	if len(paths) == 0 {
		t.Fatalf("no .tf files in %s", dir)
	}
	p := hclparse.NewParser()
	files = map[string]*hclsyntax.Body{}
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", path, diags)
		}
		files[filepath.Base(path)] = f.Body.(*hclsyntax.Body)
	}
	return dir, files
}

// TestTerraformFormat holds the files to `terraform fmt`'s layout, which is
// hclwrite.Format's.
func TestTerraformFormat(t *testing.T) {
	dir, _ := tfFiles(t)
	paths, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	for _, path := range append(paths, filepath.Join(dir, "terraform.tfvars.example")) {
		src := readFile(t, path)
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted: run terraform fmt %s", path, dir)
		}
	}
}

// TestTerraformVariables: every var.X is declared, every declared variable is
// used, and the example tfvars sets only declared ones, every required one.
func TestTerraformVariables(t *testing.T) {
	dir, files := tfFiles(t)
	declared, required, used := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, body := range files {
		for _, b := range body.Blocks {
			if b.Type == "variable" {
				declared[b.Labels[0]] = true
				if _, ok := b.Body.Attributes["default"]; !ok {
					required[b.Labels[0]] = true
				}
				continue // its own validation is no use
			}
			hclsyntax.VisitAll(b.Body, func(n hclsyntax.Node) hcl.Diagnostics {
				if e, ok := n.(*hclsyntax.ScopeTraversalExpr); ok && e.Traversal.RootName() == "var" && len(e.Traversal) > 1 {
					used[e.Traversal[1].(hcl.TraverseAttr).Name] = true
				}
				return nil
			})
		}
	}
	for v := range used {
		if !declared[v] {
			t.Errorf("var.%s is used but not declared in variables.tf", v)
		}
	}
	for v := range declared {
		if !used[v] {
			t.Errorf("variable %q is declared but never used", v)
		}
	}
	example := filepath.Join(dir, "terraform.tfvars.example")
	f, diags := hclparse.NewParser().ParseHCLFile(example)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for name := range attrs {
		if !declared[name] {
			t.Errorf("%s sets %s, which is not a variable", example, name)
		}
	}
	for name := range required {
		if attrs[name] == nil {
			t.Errorf("%s does not set the required variable %s", example, name)
		}
	}
}

// TestTerraformTemplates: every templatefile() names an existing file and
// passes exactly the variables that file uses.
func TestTerraformTemplates(t *testing.T) {
	dir, files := tfFiles(t)
	calls := 0
	for name, body := range files {
		hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			fc, ok := n.(*hclsyntax.FunctionCallExpr)
			if !ok || fc.Name != "templatefile" {
				return nil
			}
			calls++
			checkTemplateCall(t, dir, name, fc)
			return nil
		})
	}
	if calls == 0 {
		t.Error("no templatefile() call: the agents should get deploy/cloud-init/agent.yaml")
	}
}

func checkTemplateCall(t *testing.T, dir, file string, fc *hclsyntax.FunctionCallExpr) {
	t.Helper()
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(dir)})}}
	pathVal, diags := fc.Args[0].Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: templatefile's path must use only path.module: %v", file, diags)
	}
	path := filepath.Clean(pathVal.AsString())
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: templatefile(%s): %v", file, path, err)
	}
	obj, ok := fc.Args[1].(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatalf("%s: templatefile's variables must be an object literal", file)
	}
	var passed []string
	for _, item := range obj.Items {
		passed = append(passed, hcl.ExprAsKeyword(item.KeyExpr))
	}
	want := templateVars(t, path)
	if got := strings.Join(sortedStrings(passed), " "); got != strings.Join(want, " ") {
		t.Errorf("%s: templatefile(%s) passes %s; the template uses %s", file, path, got, strings.Join(want, " "))
	}
}

func sortedStrings(s []string) []string {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return sortedKeys(m)
}

// TestTerraformProviders: each resource type's provider is required, with a
// source, in versions.tf.
func TestTerraformProviders(t *testing.T) {
	_, files := tfFiles(t)
	required := map[string]bool{}
	for _, body := range files {
		for _, b := range body.Blocks {
			if b.Type != "terraform" {
				continue
			}
			for _, rp := range b.Body.Blocks {
				if rp.Type != "required_providers" {
					continue
				}
				for name, attr := range rp.Body.Attributes {
					v, diags := attr.Expr.Value(nil)
					if diags.HasErrors() || !v.Type().IsObjectType() || !v.Type().HasAttribute("source") || !v.Type().HasAttribute("version") {
						t.Errorf("required_providers.%s: want { source, version }", name)
					}
					required[name] = true
				}
			}
		}
	}
	for _, body := range files {
		for _, b := range body.Blocks {
			if b.Type == "resource" || b.Type == "data" {
				if p, _, _ := strings.Cut(b.Labels[0], "_"); !required[p] {
					t.Errorf("%s %s.%s: provider %s is not in required_providers", b.Type, b.Labels[0], b.Labels[1], p)
				}
			}
		}
	}
}
