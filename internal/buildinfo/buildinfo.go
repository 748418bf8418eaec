// Package buildinfo says which build a binary is: the version stamped at
// build time, the commit it was built from and the Go that built it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// commit is stamped by `make build`/`make dist`:
// -ldflags "-X github.com/meridian-net/meridian/internal/buildinfo.commit=…"
// (Go's own VCS stamp is missing where GOFLAGS says -buildvcs=false, as
// on some build machines).
var commit string

// Commit is the revision the binary was built from: the stamped one, else
// the VCS revision Go recorded (12 hex digits, "-dirty" when the tree had
// changes), else "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String is the version line a binary prints: name, version, result
// contract, commit and Go version.
func String(name, version string, contract int) string {
	return fmt.Sprintf("%s %s (result contract v%d, commit %s, %s %s/%s)", name, version, contract, Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
