package probe

// What the http kind makes of a response: body, status, timings and the
// TLS connection and certificate it came over.

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// readHTTPBody reads the body, keeping it only when it is to be searched.
func readHTTPBody(r io.Reader, o *HTTPOptions) ([]byte, int64, error) {
	limit := o.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	var w io.Writer = io.Discard
	var buf bytes.Buffer
	if o.BodyContains != "" {
		w = &buf
	}
	n, err := io.Copy(w, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("body is longer than max_body_bytes (%d); raise http.max_body_bytes", limit)
		n = limit
	}
	return buf.Bytes(), n, err
}

type httpFailure struct {
	class string
	err   error
}

func checkHTTP(resp *http.Response, body []byte, n int64, readErr error, o *HTTPOptions) *httpFailure {
	if readErr != nil {
		class := classify(readErr, PhaseHTTP)
		return &httpFailure{class, fmt.Errorf("cannot read body after %d bytes: %w", n, readErr)}
	}
	if !httpStatusOK(resp.StatusCode, o.ExpectStatus) {
		want := "below 400"
		if len(o.ExpectStatus) > 0 {
			want = fmt.Sprint(o.ExpectStatus)
		}
		return &httpFailure{result.ErrHTTPStatus, fmt.Errorf("status %d, want %s", resp.StatusCode, want)}
	}
	if o.BodyContains != "" && !bytes.Contains(body, []byte(o.BodyContains)) {
		return &httpFailure{result.ErrBodyMismatch, fmt.Errorf("body (%d bytes) does not contain %q", n, o.BodyContains)}
	}
	return nil
}

func httpStatusOK(code int, expect []int) bool {
	if len(expect) == 0 {
		return code < 400
	}
	for _, c := range expect {
		if c == code {
			return true
		}
	}
	return false
}

// unwrapURLError drops the "Get \"URL\": " prefix: the result says the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// finishHTTP copies what the trace and the response showed into res.
func finishHTTP(res *result.Result, tr *httpTrace, resp *http.Response, end time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.fillPhases(res, end)
	res.HTTP.RemoteIP = tr.remoteIP
	if !tr.gotConn.IsZero() {
		reused := tr.reused
		res.HTTP.ConnReused = &reused
	}
	if resp != nil {
		res.HTTP.Status = resp.StatusCode
		res.HTTP.Proto = resp.Proto
		res.HTTP.Location = resp.Header.Get("Location")
		// Alt-Svc is how a client learns a server speaks h3 (RFC 7838):
		// reported as sent, so a check with proto: h3 can follow it up.
		res.HTTP.AltSvc = strings.Join(resp.Header.Values("Alt-Svc"), ", ")
		if resp.TLS != nil {
			res.TLS = describeTLS(resp.TLS, nil, end)
		}
		return
	}
	if tr.tlsState != nil || tr.tlsErr != nil {
		res.TLS = describeTLS(tr.tlsState, tr.tlsErr, end)
	}
}

// describeTLS describes a handshake; when it failed on the certificate, the
// certificate is still described (an expired cert's days_left is useful).
func describeTLS(cs *tls.ConnectionState, hsErr error, now time.Time) *result.TLS {
	info := &result.TLS{}
	var certs []*x509.Certificate
	if cs != nil {
		if cs.HandshakeComplete {
			info.TLSVersion = tls.VersionName(cs.Version)
			info.TLSCipher = tls.CipherSuiteName(cs.CipherSuite)
			info.TLSALPN = cs.NegotiatedProtocol
		}
		certs = cs.PeerCertificates
	}
	var verr *tls.CertificateVerificationError
	if len(certs) == 0 && errors.As(hsErr, &verr) {
		certs = verr.UnverifiedCertificates
	}
	if len(certs) > 0 {
		describeLeaf(info, certs[0], now)
	}
	if cs == nil && len(certs) == 0 {
		return nil
	}
	return info
}

func describeLeaf(info *result.TLS, leaf *x509.Certificate, now time.Time) {
	info.CertSubject = leaf.Subject.String()
	info.CertIssuer = leaf.Issuer.String()
	info.CertSANs = append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		info.CertSANs = append(info.CertSANs, ip.String())
	}
	info.CertNotAfter = result.StorableTime(leaf.NotAfter)
	days := math.Round(leaf.NotAfter.Sub(now).Hours()/24*100) / 100
	info.CertDaysLeft = &days
	sum := sha256.Sum256(leaf.Raw)
	info.CertSHA256 = hex.EncodeToString(sum[:])
}
