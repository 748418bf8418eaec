package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

var (
	tlsReloads      = metrics.NewCounter("meridian_tls_reloads_total")
	tlsReloadErrors = metrics.NewCounter("meridian_tls_reload_errors_total")
	// When the certificate served now expires, for alerts on a renewal
	// that did not happen.
	tlsNotAfter = metrics.NewGauge("meridian_tls_cert_not_after_seconds", nil)
)

// Cert is the collector's TLS certificate, read from PEM files and
// replaced atomically by Reload: each handshake takes the current one
// through GetCertificate, and connections already established keep the one
// they negotiated, so a renewal drops nothing.
type Cert struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	now               func() time.Time
}

// LoadCert reads and checks the certificate chain in certFile and its
// private key in keyFile.
func LoadCert(certFile, keyFile string) (*Cert, error) {
	c := &Cert{certFile: certFile, keyFile: keyFile, now: time.Now}
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.set(cert)
	return c, nil
}

// Reload reads the files again. On error the certificate served stays the
// previous one, and the error is counted in meridian_tls_reload_errors_total.
func (c *Cert) Reload() error {
	cert, err := c.load()
	if err != nil {
		tlsReloadErrors.Inc()
		return err
	}
	c.set(cert)
	tlsReloads.Inc()
	return nil
}

// Leaf is the certificate served now.
func (c *Cert) Leaf() *x509.Certificate { return c.cur.Load().Leaf }

// GetCertificate is for tls.Config.
func (c *Cert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// TLSConfig serves c to clients speaking TLS 1.2 or later.
func (c *Cert) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// ReloadOn reloads c on every value from sig (SIGHUP) until ctx is done,
// logging each outcome.
func (c *Cert) ReloadOn(ctx context.Context, sig <-chan os.Signal, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		}
		if err := c.Reload(); err != nil {
			logger.Error("cannot reload the TLS certificate; still serving the previous one (fix the files, then send SIGHUP again)",
				"err", err, "serial", c.Leaf().SerialNumber.String())
			continue
		}
		leaf := c.Leaf()
		logger.Info("reloaded the TLS certificate", "serial", leaf.SerialNumber.String(),
			"subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

func (c *Cert) set(cert *tls.Certificate) {
	c.cur.Store(cert)
	tlsNotAfter.Set(float64(cert.Leaf.NotAfter.Unix()))
}

// load reads both files and checks them; every error names the file at
// fault and what it should hold.
func (c *Cert) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(c.certFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the TLS certificate: %w (check --tls-cert)", err)
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the TLS key: %w (check --tls-key)", err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("cannot use %s as the TLS certificate: %w (want the PEM chain, leaf first)", c.certFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cannot use %s as the key of %s: %w (want the unencrypted PEM private key of that certificate)",
			c.keyFile, c.certFile, err)
	}
	if now := c.now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("cannot use the TLS certificate %s: it expired at %s; renew it",
			c.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// checkCertPEM wants the first PEM block to be a certificate that parses.
func checkCertPEM(b []byte) error {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return fmt.Errorf("no PEM CERTIFICATE block in it")
		}
		if block.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(block.Bytes)
			return err
		}
	}
}
