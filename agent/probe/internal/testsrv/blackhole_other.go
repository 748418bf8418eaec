//go:build !linux

package testsrv

import "testing"

// Blackhole is only implemented on Linux; elsewhere it skips the test.
func Blackhole(tb testing.TB) string {
	tb.Helper()
	tb.Skip("blackhole listener needs Linux")
	return ""
}
