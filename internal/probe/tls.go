package probe

// TLSOptions are the options of a tls check; its target is HOST[:PORT]
// (port 443 by default).
//
//	tls:
//	  family: any                  # and resolver: as for tcp
//	  server_name: www.example.com # SNI and the name verified; default: the target host
//	  alpn: [h2, http/1.1]         # the default
//	  trust_stores:                # extra trust stores, name: PEM bundle path
//	    corp: /etc/meridian/corp-ca.pem
//	  insecure_skip_verify: false  # true: trust and name are recorded but not required
//	  min_days_left: 14            # optional: fail with tls_cert_expiring below this
//
// The result is ok when the handshake completes and, unless
// insecure_skip_verify: the served chain validates in every listed trust
// store (in the system store when none is listed) and the leaf matches the
// server name; and the leaf has at least min_days_left days to run. The
// system store is always checked and recorded in trust, listed or not.
type TLSOptions struct {
	DialOptions        `yaml:",inline"`
	ServerName         string            `yaml:"server_name"`
	ALPN               []string          `yaml:"alpn"`
	TrustStores        map[string]string `yaml:"trust_stores"`
	InsecureSkipVerify bool              `yaml:"insecure_skip_verify"`
	MinDaysLeft        float64           `yaml:"min_days_left"`
}
