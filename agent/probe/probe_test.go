package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// Probes plug into the kinds internal/probe defines: one probe for each.
func TestProbesRegistered(t *testing.T) {
	defined := checkdef.Kinds()
	for kind := range Probes {
		if !slices.Contains(defined, kind) {
			t.Errorf("kind %q has a probe but no definition in internal/probe (have %v)", kind, defined)
		}
	}
	for _, kind := range defined {
		if Probes[kind] == nil {
			t.Errorf("kind %s has no probe", kind)
		}
	}
}

func TestRunUnknownKind(t *testing.T) {
	_, err := Run(context.Background(), &Check{Name: "x", Kind: "smtp", Target: "a"})
	if err == nil || !strings.Contains(err.Error(), `no probe for kind "smtp"`) {
		t.Errorf("got error %v, want no probe for kind \"smtp\"", err)
	}
}

type fakeTimeoutErr struct{}

func (fakeTimeoutErr) Error() string   { return "i/o timeout" }
func (fakeTimeoutErr) Timeout() bool   { return true }
func (fakeTimeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: err}}
	}
	for _, tc := range []struct {
		err   error
		phase string
		want  string
	}{
		{nil, PhaseHTTP, ""},
		{&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, PhaseConnect, result.ErrDNSNXDomain},
		{&net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, PhaseDNS, result.ErrDNSTimeout},
		{fmt.Errorf("lookup: %w", &net.DNSError{Err: "server misbehaving", Name: "x"}), PhaseDNS, result.ErrDNS},
		{context.DeadlineExceeded, PhaseDNS, result.ErrDNSTimeout},
		{dial(syscall.ECONNREFUSED), PhaseConnect, result.ErrConnectRefused},
		{dial(syscall.EHOSTUNREACH), PhaseConnect, result.ErrConnectUnreach},
		{dial(fakeTimeoutErr{}), PhaseConnect, result.ErrConnectTimeout},
		{context.DeadlineExceeded, PhaseConnect, result.ErrConnectTimeout},
		{context.DeadlineExceeded, PhaseTLS, result.ErrTimeout},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), PhaseHTTP, result.ErrTimeout},
		{errors.New("weird"), PhaseConnect, result.ErrConnect},
		{errors.New("weird"), PhaseDNS, result.ErrDNS},
		{errors.New("remote error: tls: bad certificate"), PhaseTLS, result.ErrTLSHandshake},
		{errors.New("unexpected EOF"), PhaseHTTP, result.ErrHTTP},
	} {
		if got := classify(tc.err, tc.phase); got != tc.want {
			t.Errorf("classify(%v, %s): got %q, want %q", tc.err, tc.phase, got, tc.want)
		}
	}
}
