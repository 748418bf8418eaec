package probe

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// systemStore is the name the platform's roots are recorded under.
const systemStore = "system"

// systemRoots is the pool verified as the "system" store; nil means the
// platform's roots. Tests set their own CA here.
var systemRoots *x509.CertPool

// tlsCheck is a tls check's options, parsed and loaded.
type tlsCheck struct {
	config   *tls.Config // a template: cloned per connection
	name     string      // the name the leaf must match
	sni      string      // what the client sent as SNI ("" for an address)
	stores   []trustStore
	required []string // stores that must validate for ok
	insecure bool
	minDays  float64
}

type trustStore struct {
	name string
	pool *x509.CertPool
}

// TLS resolves the target, connects, times the TLS handshake and then
// verifies the served chain against each trust store itself.
func TLS(ctx context.Context, c *Check) ([]*result.Result, error) {
	ep, err := parseEndpoint(c.Target, "443", c.TLS.DialOptions)
	if err != nil {
		return nil, fmt.Errorf("cannot run tls check %q: %w", c.Name, err)
	}
	tc, err := loadTLSCheck(&c.TLS, strings.TrimSuffix(ep.host, "."))
	if err != nil {
		return nil, fmt.Errorf("cannot run tls check %q: %w", c.Name, err)
	}
	return ep.reach(ctx, c, result.KindTLS, tc.handshake), nil
}

// loadTLSCheck parses and loads a tls check's options; host is the
// target's.
func loadTLSCheck(o *TLSOptions, host string) (*tlsCheck, error) {
	tc := &tlsCheck{name: strings.TrimSuffix(o.ServerName, "."), insecure: o.InsecureSkipVerify, minDays: o.MinDaysLeft}
	if tc.name == "" {
		tc.name = host
	}
	if _, err := netip.ParseAddr(tc.name); err != nil {
		tc.sni = tc.name // Go sends no SNI for an address
	}
	alpn := o.ALPN
	if alpn == nil {
		alpn = []string{"h2", "http/1.1"}
	}
	// Verification happens after the handshake, per trust store, so that a
	// bad chain is measured and described rather than cut short.
	tc.config = &tls.Config{ServerName: tc.name, NextProtos: alpn, InsecureSkipVerify: true}
	tc.stores = []trustStore{{name: systemStore, pool: systemRoots}}
	names := make([]string, 0, len(o.TrustStores))
	for name := range o.TrustStores {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		pool, err := loadPool(name, o.TrustStores[name])
		if err != nil {
			return nil, err
		}
		tc.stores = append(tc.stores, trustStore{name: name, pool: pool})
	}
	tc.required = names
	if len(names) == 0 {
		tc.required = []string{systemStore}
	}
	if o.MinDaysLeft < 0 {
		return nil, fmt.Errorf("min_days_left %v is negative", o.MinDaysLeft)
	}
	return tc, nil
}

func loadPool(name, path string) (*x509.CertPool, error) {
	if name == systemStore || name == "" {
		return nil, fmt.Errorf("trust store name %q is reserved or empty: rename it", name)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read trust store %q: %w", name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("cannot load trust store %q from %s: no PEM certificates in it", name, path)
	}
	return pool, nil
}

// handshake is the tls probe's session: handshake, describe, verify.
func (tc *tlsCheck) handshake(ctx context.Context, res *result.Result, conn net.Conn) {
	client := tls.Client(conn, tc.config.Clone())
	t := time.Now()
	err := client.HandshakeContext(ctx)
	res.TLSMs = result.Ms(time.Since(t))
	if err != nil {
		res.Fail(classify(err, PhaseTLS), fmt.Errorf("cannot complete TLS handshake with %s: %w", conn.RemoteAddr(), err))
		return
	}
	st := client.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		res.Fail(result.ErrTLSHandshake, errors.New("server sent no certificate"))
		return
	}
	now := time.Now()
	res.TLS = describe(st, tc.sni, now)
	errs := tc.verify(res.TLS, st.PeerCertificates, now)
	tc.judge(res, st.PeerCertificates[0], errs)
}

func describe(st tls.ConnectionState, sni string, now time.Time) *result.TLS {
	leaf := st.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	days := math.Round(leaf.NotAfter.Sub(now).Hours()/24*100) / 100
	stapled := len(st.OCSPResponse) > 0
	sans := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		sans = append(sans, ip.String())
	}
	return &result.TLS{
		TLSVersion: tls.VersionName(st.Version), TLSCipher: tls.CipherSuiteName(st.CipherSuite),
		TLSALPN: st.NegotiatedProtocol, TLSSNI: sni,
		CertSubject: leaf.Subject.String(), CertIssuer: leaf.Issuer.String(), CertSANs: sans,
		CertNotAfter: result.StorableTime(leaf.NotAfter), CertDaysLeft: &days, CertSHA256: hex.EncodeToString(sum[:]),
		OCSPStapled: &stapled,
	}
}

// verify checks the chain (not the name: that is the same for every store)
// against each store, records the outcome in t.Trust and returns the
// errors by store name.
func (tc *tlsCheck) verify(t *result.TLS, certs []*x509.Certificate, now time.Time) map[string]error {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	errs := map[string]error{}
	for _, s := range tc.stores {
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: s.pool, Intermediates: inter, CurrentTime: now})
		check := result.TrustCheck{Store: s.name, Valid: err == nil}
		if err != nil {
			check.Error = verifyClass(err)
			errs[s.name] = err
		}
		t.Trust = append(t.Trust, check)
	}
	return errs
}

// judge applies the ok rule of TLSOptions.
func (tc *tlsCheck) judge(res *result.Result, leaf *x509.Certificate, errs map[string]error) {
	if !tc.insecure {
		for _, name := range tc.required {
			if err := errs[name]; err != nil {
				res.Fail(verifyClass(err), fmt.Errorf("certificate chain not valid in trust store %q: %w", name, err))
				return
			}
		}
		if err := leaf.VerifyHostname(tc.name); err != nil {
			res.Fail(result.ErrTLSNameMismatch, err)
			return
		}
	}
	if days := *res.TLS.CertDaysLeft; tc.minDays > 0 && days < tc.minDays {
		res.Fail(result.ErrTLSCertExpiring, fmt.Errorf("certificate expires in %.2f days, under min_days_left %v", days, tc.minDays))
	}
}

// verifyClass classifies a chain verification error.
func verifyClass(err error) string {
	if c := classify(err, PhaseTLS); c != result.ErrTLSHandshake {
		return c
	}
	return result.ErrTLSCertUntrusted // for example no system roots at all
}
