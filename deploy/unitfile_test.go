package deploy

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitFile is a parsed systemd unit: section -> key -> every assignment, in
// order (list settings such as SystemCallFilter= may be given many times).
type unitFile struct {
	path     string
	sections map[string]map[string][]string
}

// parseUnit reads a unit file the way systemd does for what these tests
// need: sections, KEY=VALUE, comments, backslash continuations.
func parseUnit(path string) (*unitFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &unitFile{path: path, sections: map[string]map[string][]string{}}
	section, cont := "", ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cont != "" {
			line, cont = cont+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u.sections[section] = map[string][]string{}
		case section == "":
			return nil, fmt.Errorf("%s:%d: setting outside a section", path, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			u.sections[section][k] = append(u.sections[section][k], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

func mustParseUnit(t testing.TB, path string) *unitFile {
	t.Helper()
	u, err := parseUnit(path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the last assignment of a [Service] key ("" when unset).
func (u *unitFile) get(key string) string {
	vs := u.sections["Service"][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// has says whether a [Service] key is assigned at all (even to "").
func (u *unitFile) has(key string) bool { return len(u.sections["Service"][key]) > 0 }

// capabilities returns a capability list setting as setpriv spells it
// ("-all,+net_raw"): an empty assignment resets the list, as in systemd.
func (u *unitFile) capabilities(key string) string {
	spec := "-all"
	for _, v := range u.sections["Service"][key] {
		if v == "" {
			spec = "-all"
			continue
		}
		for _, c := range strings.Fields(v) {
			spec += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
	}
	return spec
}

// duration parses a systemd time span such as 20, 20s, 1min 30s.
func (u *unitFile) duration(key string) (time.Duration, error) {
	v := u.get(key)
	if _, err := strconv.Atoi(v); err == nil {
		v += "s" // a bare number is seconds
	}
	d, err := time.ParseDuration(strings.NewReplacer("min", "m", " ", "").Replace(v))
	if err != nil {
		return 0, fmt.Errorf("%s: %s=%q: %w", u.path, key, u.get(key), err)
	}
	return d, nil
}

// command splits an Exec*= line into words and expands $VAR (split on
// whitespace, gone when empty) and ${VAR} from env, as systemd does.
func command(line string, env map[string]string) []string {
	line = strings.TrimLeft(line, "-@:+!")
	var argv []string
	for _, w := range strings.Fields(line) {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			argv = append(argv, env[w[2:len(w)-1]])
		case strings.HasPrefix(w, "$"):
			argv = append(argv, strings.Fields(env[w[1:]])...)
		default:
			argv = append(argv, w)
		}
	}
	return argv
}

// envFile reads a systemd EnvironmentFile: KEY=VALUE lines, # comments.
func envFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: want KEY=VALUE, got %q", path, line)
		}
		env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return env, nil
}

func TestParseUnit(t *testing.T) {
	p := t.TempDir() + "/x.service"
	os.WriteFile(p, []byte("[Service]\n# c\nUser=a\nCapabilityBoundingSet=CAP_A\nCapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_RAW CAP_B\nExecStart=/bin/x \\\n  --y $F ${G}\nTimeoutStopSec=1min 30s\n"), 0o644)
	u := mustParseUnit(t, p)
	if got := u.get("User"); got != "a" {
		t.Errorf("User: got %q, want a", got)
	}
	if got, want := u.capabilities("CapabilityBoundingSet"), "-all,+net_raw,+b"; got != want {
		t.Errorf("capabilities: got %q, want %q", got, want)
	}
	if got, want := fmt.Sprint(command(u.get("ExecStart"), map[string]string{"F": "1 2", "G": "3 4"})), "[/bin/x --y 1 2 3 4]"; got != want {
		t.Errorf("command: got %s, want %s", got, want)
	}
	if d, err := u.duration("TimeoutStopSec"); err != nil || d != 90*time.Second {
		t.Errorf("TimeoutStopSec: got %v, %v, want 1m30s", d, err)
	}
}
