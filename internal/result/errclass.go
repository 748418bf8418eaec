package result

// Error classes: short, stable names that dashboards, alerts and steering
// group by. Add new ones here; never rename one that has shipped.
const (
	ErrTimeout = "timeout"

	ErrDNSNXDomain       = "dns_nxdomain"
	ErrDNSTimeout        = "dns_timeout"
	ErrDNSServfail       = "dns_servfail"
	ErrDNSRefused        = "dns_refused"
	ErrDNSNoAnswer       = "dns_no_answer"
	ErrDNS               = "dns_error"
	ErrDNSAnswerMismatch = "dns_answer_mismatch"

	ErrConnectRefused = "connect_refused"
	ErrConnectTimeout = "connect_timeout"
	ErrConnectUnreach = "connect_unreachable"
	ErrConnect        = "connect_error"

	ErrTLSCertExpired     = "tls_cert_expired"
	ErrTLSCertNotYetValid = "tls_cert_not_yet_valid"
	ErrTLSCertUntrusted   = "tls_cert_untrusted"
	ErrTLSNameMismatch    = "tls_name_mismatch"
	ErrTLSHandshake       = "tls_handshake"
	ErrTLSCertExpiring    = "tls_cert_expiring" // fewer days left than the check allows

	ErrHTTPStatus   = "http_status"
	ErrBodyMismatch = "body_mismatch"
	ErrHTTP         = "http_error"

	ErrICMPLoss = "icmp_loss"
	// ErrTraceIncomplete: a traceroute ran out of hops (or time) before
	// the destination answered.
	ErrTraceIncomplete = "trace_incomplete"
	ErrBrowser         = "browser_error"

	// ErrProbePanic: the probe itself crashed (a bug in the agent, not the target).
	ErrProbePanic = "probe_panic"
)
