package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	got := String("meridian", "v1.2.3", 1)
	for _, want := range []string{"meridian v1.2.3 ", "result contract v1", "commit ", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(got, want) {
			t.Errorf("String = %q, want it to hold %q", got, want)
		}
	}
}
