package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads deploy/compose/compose.yaml as `docker compose` would,
// from its own directory, with env as the only environment.
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir := filepath.Join(repo(t), "deploy/compose")
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithEnv(kv))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// composeEnv reads example.env with the passwords filled in, as a user's .env.
func composeEnv(t *testing.T) map[string]string {
	t.Helper()
	env, err := envFile(filepath.Join(repo(t), "deploy/compose/example.env"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		if v == "" {
			env[k] = "secret-" + strings.ToLower(k)
		}
	}
	return env
}

func TestComposeLoads(t *testing.T) {
	p, err := loadCompose(t, composeEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clickhouse", "migrate", "collector", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	for name, s := range p.Services {
		checkServiceFiles(t, name, s)
		for _, key := range []string{"MERIDIAN_CLICKHOUSE", "MERIDIAN_CLICKHOUSE_HOST"} {
			if v := s.Environment[key]; v != nil {
				if host, _, _ := strings.Cut(*v, ":"); p.Services[host].Name == "" {
					t.Errorf("service %s: %s=%s names no service", name, key, *v)
				}
			}
		}
	}
	for name, c := range p.Configs {
		checkExists(t, "config "+name, c.File)
	}
	for name, c := range p.Secrets {
		checkExists(t, "secret "+name, c.File)
	}
	checkGrafanaMounts(t, p.Services["grafana"])
}

// checkServiceFiles: everything a service takes from the repository exists.
func checkServiceFiles(t *testing.T, name string, s types.ServiceConfig) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			checkExists(t, name+" bind mount", v.Source)
		}
	}
	for _, f := range s.EnvFiles {
		checkExists(t, name+" env_file", f.Path)
	}
	if b := s.Build; b != nil {
		checkExists(t, name+" build context", b.Context)
		checkExists(t, name+" Dockerfile", filepath.Join(b.Context, b.Dockerfile))
	}
}

func checkExists(t *testing.T, what, path string) {
	t.Helper()
	if path == "" {
		t.Errorf("%s: no path", what)
	} else if _, err := os.Stat(path); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// checkGrafanaMounts: the dashboards land where the provisioning file looks.
func checkGrafanaMounts(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	prov := string(readFile(t, filepath.Join(repo(t), "deploy/grafana/provisioning/dashboards/meridian.yml")))
	m := regexp.MustCompile(`path: \$\{MERIDIAN_DASHBOARDS:-([^}]+)\}`).FindStringSubmatch(prov)
	if m == nil {
		t.Fatal("cannot find the dashboards path in deploy/grafana/provisioning/dashboards/meridian.yml")
	}
	want := m[1]
	if v := s.Environment["MERIDIAN_DASHBOARDS"]; v != nil {
		want = *v
	}
	mounts := map[string]string{}
	for _, v := range s.Volumes {
		mounts[v.Target] = v.Source
	}
	if src := mounts[want]; src != filepath.Join(repo(t), "dashboards") {
		t.Errorf("grafana: %s holds %q, want the repository's dashboards/", want, src)
	}
	if src := mounts["/etc/grafana/provisioning"]; src != filepath.Join(repo(t), "deploy/grafana/provisioning") {
		t.Errorf("grafana: /etc/grafana/provisioning holds %q, want deploy/grafana/provisioning", src)
	}
}

// TestComposeNeedsPasswords: no .env, no stack, and the error says what to set.
func TestComposeNeedsPasswords(t *testing.T) {
	_, err := loadCompose(t, nil)
	if err == nil || !strings.Contains(err.Error(), "example.env") {
		t.Fatalf("loading without passwords: got %v, want an error pointing at example.env", err)
	}
	src := string(readFile(t, filepath.Join(repo(t), "deploy/compose/compose.yaml")))
	env := composeEnv(t)
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+):\?`).FindAllStringSubmatch(src, -1) {
		if _, ok := env[m[1]]; !ok {
			t.Errorf("compose.yaml requires %s; example.env does not mention it", m[1])
		}
	}
}

// TestComposeBuildContext: the collector image builds from the repository
// root minus Dockerfile.dockerignore; nothing the build reads may be left out.
func TestComposeBuildContext(t *testing.T) {
	root := repo(t)
	var patterns []string
	for _, line := range strings.Split(string(readFile(t, filepath.Join(root, "deploy/compose/Dockerfile.dockerignore"))), "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
			patterns = append(patterns, line)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`, "./collector/cmd/meridian")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fs := strings.Fields(line)
		for _, f := range fs[1:] {
			rel, _ := filepath.Rel(root, filepath.Join(fs[0], f))
			if p := ignoredBy(rel, patterns); p != "" {
				t.Errorf("the collector build reads %s, which Dockerfile.dockerignore leaves out (%s)", rel, p)
			}
		}
	}
}

// ignoredBy matches the simple patterns Dockerfile.dockerignore uses: a
// path prefix, **/NAME (a directory anywhere) and **/*SUFFIX.
func ignoredBy(rel string, patterns []string) string {
	parts := strings.Split(rel, "/")
	for _, p := range patterns {
		switch {
		case strings.HasPrefix(p, "**/*"):
			if strings.HasSuffix(rel, p[4:]) {
				return p
			}
		case strings.HasPrefix(p, "**/"):
			for _, part := range parts[:len(parts)-1] {
				if part == p[3:] {
					return p
				}
			}
		case rel == p || strings.HasPrefix(rel, p+"/"):
			return p
		}
	}
	return ""
}
