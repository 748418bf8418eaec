package deploy

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDist runs `make dist` into a temporary directory: four static
// binaries for linux amd64 and arm64 with their SHA-256 sums; the amd64
// ones (this machine's) run and print their version with the commit.
func TestDist(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds four binaries (a few minutes on a cold cache)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("make", "-C", "..", "dist", "DIST="+dir).CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{
		"meridian-linux-amd64": elf.EM_X86_64, "meridian-agent-linux-amd64": elf.EM_X86_64,
		"meridian-linux-arm64": elf.EM_AARCH64, "meridian-agent-linux-arm64": elf.EM_AARCH64,
	}
	if n := len(strings.Split(strings.TrimSpace(string(sums)), "\n")); n != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want %d:\n%s", n, len(want), sums)
	}
	for name, machine := range want {
		path := filepath.Join(dir, name)
		checkStatic(t, path, machine)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if !strings.Contains(string(sums), hex.EncodeToString(sum[:])+"  "+name) {
			t.Errorf("SHA256SUMS has no line for %s with its sum", name)
		}
		if machine != elf.EM_X86_64 {
			continue
		}
		out, err := exec.Command(path, "version").CombinedOutput()
		commit, _ := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
		if err != nil || !strings.Contains(string(out), "commit "+strings.TrimSpace(string(commit))) {
			t.Errorf("%s version: %v\n%s\nwant the commit %s", name, err, out, commit)
		}
	}
}

// checkStatic fails unless path is an ELF binary for machine with no
// program interpreter (statically linked).
func checkStatic(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s is for %v, want %v", filepath.Base(path), f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s asks for a program interpreter: not static", filepath.Base(path))
		}
	}
}
