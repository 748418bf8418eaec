package ship

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// LoadCA returns the system roots plus the PEM certificates in path: the
// private CA that signed the collector's certificate.
func LoadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the collector CA: %w (check --ca, MERIDIAN_CA or collector_ca)", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cannot use %s as the collector CA: no PEM certificates in it (want the CA certificate that signed the collector's, in PEM)", path)
	}
	return pool, nil
}

// Transport is for everything the agent sends the collector (results,
// remote config, heartbeats): TLS 1.2 or later, verified against roots
// (nil: the system's), HTTP/2 when the collector offers it.
func Transport(roots *x509.CertPool) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr.ForceAttemptHTTP2 = true
	return tr
}

// PlainRemote says whether collector is a plain http:// URL to a host
// other than this one (127.0.0.0/8, ::1, localhost): the token and the
// results would cross the network in clear text.
func PlainRemote(collector string) bool {
	u, err := url.Parse(collector)
	if err != nil || u.Scheme != "http" {
		return false
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if h == "localhost" {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}
