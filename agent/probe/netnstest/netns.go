// Package netnstest builds network paths out of Linux network namespaces
// for tests: a source, three routers and a destination joined by veth
// pairs, as root. Tests trace across them (agent/probe) and run agents in
// them (e2e).
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Path is src — r1 — r2 — r3 — dst. Link i (1-4) is 10.201.i.0/24; each
// router answers from .1 of the link facing src; dst is 10.201.4.2.
type Path struct {
	Src, Dst string
	Routers  [3]string
	Hops     []string // the address each router answers from, then Dst's
	prefix   string
}

// Router says how a router of the path answers: ICMPRatelimit is its
// net.ipv4.icmp_ratelimit in ms (0: it answers every probe).
type Router struct{ ICMPRatelimit int }

// NewPath builds the path under unique names and removes it when the test
// ends. It skips when not root, or when the kernel refuses namespaces.
func NewPath(tb testing.TB, routers [3]Router) *Path {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("building network namespaces needs root (make test runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Fatal("no ip command: install iproute2 (apt-get install iproute2)")
	}
	b := make([]byte, 3)
	rand.Read(b)
	pre := "mtr" + hex.EncodeToString(b)
	p := &Path{Src: pre + "-s", Dst: pre + "-d", Routers: [3]string{pre + "-r1", pre + "-r2", pre + "-r3"}, prefix: pre}
	all := []string{p.Src, p.Routers[0], p.Routers[1], p.Routers[2], p.Dst}
	for i, ns := range all {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			if i == 0 {
				tb.Skipf("the kernel refuses network namespaces here: ip netns add: %v: %s", err, out)
			}
			tb.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		tb.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		IP(tb, "-n", ns, "link", "set", "lo", "up")
		Sysctl(tb, ns, "net/ipv4/icmp_ratelimit", "0")
	}
	// Link i joins all[i] and all[i+1]: the end facing src is .1, the
	// other .2; on the last link r3 is .1 and dst .2.
	for i := range 4 {
		l, r := fmt.Sprintf("l%d", i), fmt.Sprintf("r%d", i)
		IP(tb, "link", "add", l, "netns", all[i], "type", "veth", "peer", "name", r, "netns", all[i+1])
		left, right := fmt.Sprintf("10.201.%d.2/24", i+1), fmt.Sprintf("10.201.%d.1/24", i+1)
		if i == 3 {
			left, right = right, left
		}
		IP(tb, "-n", all[i], "addr", "add", left, "dev", l)
		IP(tb, "-n", all[i+1], "addr", "add", right, "dev", r)
		IP(tb, "-n", all[i], "link", "set", l, "up")
		IP(tb, "-n", all[i+1], "link", "set", r, "up")
	}
	p.route(tb, routers)
	return p
}

// route points each namespace towards dst through the next hop and back
// to src through the previous one.
func (p *Path) route(tb testing.TB, routers [3]Router) {
	IP(tb, "-n", p.Src, "route", "add", "default", "via", "10.201.1.1")
	IP(tb, "-n", p.Dst, "route", "add", "default", "via", "10.201.4.1")
	for i, ns := range p.Routers {
		Sysctl(tb, ns, "net/ipv4/ip_forward", "1")
		Sysctl(tb, ns, "net/ipv4/icmp_ratelimit", fmt.Sprint(routers[i].ICMPRatelimit))
		if i < 2 {
			IP(tb, "-n", ns, "route", "add", "10.201.4.0/24", "via", fmt.Sprintf("10.201.%d.1", i+2))
		}
		if i > 0 {
			IP(tb, "-n", ns, "route", "add", "10.201.1.0/24", "via", fmt.Sprintf("10.201.%d.2", i+1))
		}
		p.Hops = append(p.Hops, fmt.Sprintf("10.201.%d.1", i+1))
	}
	IP(tb, "-n", p.Routers[0], "route", "add", "10.201.3.0/24", "via", "10.201.2.1")
	IP(tb, "-n", p.Routers[2], "route", "add", "10.201.2.0/24", "via", "10.201.3.2")
	p.Hops = append(p.Hops, "10.201.4.2")
}

// Uplink joins Src to the test's own namespace with a veth pair in a
// random /30 of 10.202.0.0/16, so a process in Src can reach a server the
// test runs (a collector), and returns the test side's address.
func (p *Path) Uplink(tb testing.TB) netip.Addr {
	tb.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	base := netip.AddrFrom4([4]byte{10, 202, b[0], b[1] &^ 3})
	host, src := base.Next(), base.Next().Next()
	name := p.prefix + "u"
	IP(tb, "link", "add", name, "type", "veth", "peer", "name", "up0", "netns", p.Src)
	tb.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	IP(tb, "addr", "add", host.String()+"/30", "dev", name)
	IP(tb, "link", "set", name, "up")
	IP(tb, "-n", p.Src, "addr", "add", src.String()+"/30", "dev", "up0")
	IP(tb, "-n", p.Src, "link", "set", "up0", "up")
	return host
}

// IP runs the ip command.
func IP(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Sysctl sets a per-namespace sysctl (a path under /proc/sys) in ns.
func Sysctl(tb testing.TB, ns, key, value string) {
	tb.Helper()
	IP(tb, "netns", "exec", ns, "sh", "-c", fmt.Sprintf("echo %s > /proc/sys/%s", value, key))
}

// InSrc runs f on a thread of its own moved into Src, and waits for it.
// The thread is never given back to the runtime (it ends with f's
// goroutine), so sockets f opens on its own goroutine are Src's.
func (p *Path) InSrc(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := os.Open("/run/netns/" + p.Src)
		if err == nil {
			err = unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET)
			fd.Close()
		}
		if err != nil {
			done <- fmt.Errorf("cannot enter namespace %s: %w", p.Src, err)
			return
		}
		done <- f()
	}()
	return <-done
}
