package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// Phases a probe can fail in, as passed to classify.
const (
	PhaseDNS     = "dns"
	PhaseConnect = "connect"
	PhaseTLS     = "tls"
	PhaseHTTP    = "http" // request sent, waiting for or reading the response
)

// classify maps an error that happened during phase to a stable error class
// (internal/result/errclass.go). The error's own type wins over the phase:
// a *net.DNSError is a DNS failure wherever it surfaced. The phase decides
// what a bare timeout or an unrecognised error means.
func classify(err error, phase string) string {
	if err == nil {
		return ""
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		switch {
		case dnsErr.IsNotFound:
			return result.ErrDNSNXDomain
		case dnsErr.IsTimeout || errors.Is(err, context.DeadlineExceeded):
			return result.ErrDNSTimeout
		}
		return result.ErrDNS
	}
	if c := classifyTLS(err); c != "" {
		return c
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return result.ErrConnectRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return result.ErrConnectUnreach
	}
	if errIsTimeout(err) {
		switch phase {
		case PhaseDNS:
			return result.ErrDNSTimeout
		case PhaseConnect:
			return result.ErrConnectTimeout
		}
		return result.ErrTimeout
	}
	switch phase {
	case PhaseDNS:
		return result.ErrDNS
	case PhaseConnect:
		return result.ErrConnect
	case PhaseTLS:
		return result.ErrTLSHandshake
	}
	return result.ErrHTTP
}

func errIsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classifyTLS recognises certificate verification failures; "" if err is
// not one.
func classifyTLS(err error) string {
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		if invalid.Reason == x509.Expired {
			// x509 says "expired" for both ends of the validity window.
			if invalid.Cert != nil && time.Now().Before(invalid.Cert.NotBefore) {
				return result.ErrTLSCertNotYetValid
			}
			return result.ErrTLSCertExpired
		}
		return result.ErrTLSCertUntrusted
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return result.ErrTLSCertUntrusted
	}
	var host x509.HostnameError
	if errors.As(err, &host) {
		return result.ErrTLSNameMismatch
	}
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) {
		return result.ErrTLSCertUntrusted
	}
	var alert tls.AlertError
	var rec tls.RecordHeaderError
	if errors.As(err, &alert) || errors.As(err, &rec) {
		return result.ErrTLSHandshake
	}
	return ""
}
