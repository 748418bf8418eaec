package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// busyTicks is the machine's non-idle CPU time in clock ticks (all cores),
// from /proc/stat.
func busyTicks(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy int64
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest is in user already
			busy += n
		}
	}
	return busy
}

// listenerPID finds the process with a TCP socket listening on port
// (loopback servers the tests or the developer started), or 0.
func listenerPID(port int) int {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			if _, p, ok := strings.Cut(f[1], ":"); ok {
				if n, err := strconv.ParseInt(p, 16, 32); err == nil && int(n) == port {
					inodes["socket:["+f[9]+"]"] = true
				}
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, dir := range procs {
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && inodes[link] {
				pid, _ := strconv.Atoi(strings.Split(dir, "/")[2])
				return pid
			}
		}
	}
	return 0
}

func TestListenerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	if got := listenerPID(p); got != os.Getpid() {
		t.Fatalf("listenerPID(%d) = %d, want this process %d", p, got, os.Getpid())
	}
	if busyTicks(t) <= 0 {
		t.Fatal("the machine has spent no CPU time")
	}
	ln.Close()
	if got := listenerPID(p); got != 0 {
		t.Fatalf("nothing listens on port %d any more, found pid %d", p, got)
	}
}
