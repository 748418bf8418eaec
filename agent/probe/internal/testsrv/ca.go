package testsrv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA issues certificates for tests. A CA made with Intermediate signs
// leaves whose served chain includes the intermediate.
type CA struct {
	Cert  *x509.Certificate
	key   crypto.Signer
	root  *x509.Certificate
	chain [][]byte // DER of the intermediates a leaf is served with
}

// Leaf says what a leaf certificate holds. Names are DNS names or IP
// addresses; zero times mean "valid from an hour ago for 90 days".
type Leaf struct {
	Names     []string
	NotBefore time.Time
	NotAfter  time.Time
}

// NewCA makes a self-signed root CA named name.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := caTemplate(name)
	cert := sign(tb, tmpl, tmpl, key.Public(), key)
	return &CA{Cert: cert, key: key, root: cert}
}

// Intermediate makes a CA signed by ca.
func (ca *CA) Intermediate(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	cert := sign(tb, caTemplate(name), ca.Cert, key.Public(), ca.key)
	return &CA{Cert: cert, key: key, root: ca.root, chain: append([][]byte{cert.Raw}, ca.chain...)}
}

// Pool is a cert pool holding only ca's root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}

// WritePEM writes ca's root as a PEM bundle in a temp dir and returns its path.
func (ca *CA) WritePEM(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatalf("cannot write CA bundle: %v", err)
	}
	return path
}

// Issue signs a leaf certificate for l, served with ca's intermediates.
func (ca *CA) Issue(tb testing.TB, l Leaf) tls.Certificate {
	tb.Helper()
	key := newKey(tb)
	cert := sign(tb, leafTemplate(l), ca.Cert, key.Public(), ca.key)
	return tls.Certificate{Certificate: append([][]byte{cert.Raw}, ca.chain...), PrivateKey: key, Leaf: cert}
}

// SelfSigned makes a leaf certificate that signs itself.
func SelfSigned(tb testing.TB, l Leaf) tls.Certificate {
	tb.Helper()
	key := newKey(tb)
	tmpl := leafTemplate(l)
	cert := sign(tb, tmpl, tmpl, key.Public(), key)
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("cannot generate key: %v", err)
	}
	return key
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func caTemplate(name string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Meridian Test"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func leafTemplate(l Leaf) *x509.Certificate {
	now := time.Now()
	if l.NotBefore.IsZero() {
		l.NotBefore = now.Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = now.Add(90 * 24 * time.Hour)
	}
	t := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(l.Names) > 0 {
		t.Subject.CommonName = l.Names[0]
	}
	for _, n := range l.Names {
		if ip := net.ParseIP(n); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, n)
		}
	}
	return t
}

func sign(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		tb.Fatalf("cannot sign certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("cannot parse certificate: %v", err)
	}
	return cert
}
