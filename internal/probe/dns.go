package probe

// DNSOptions are the options of a dns check; its target is the name to query.
//
//	dns:
//	  resolvers: ["1.1.1.1:53", "8.8.8.8"] # one result each; default: the system's first nameserver
//	  qtype: A                             # A (default), AAAA, CNAME, NS, TXT, HTTPS, MX, SOA, …
//	  transport: udp                       # udp (default; retried over tcp when truncated) or tcp
//	  expect_rcode: NOERROR                # default NOERROR
//	  expect_answer_contains: "192.0.2.1"  # optional, matched against each answer's text
type DNSOptions struct {
	Resolvers            []string `yaml:"resolvers"`
	QType                string   `yaml:"qtype"`
	Transport            string   `yaml:"transport"`
	ExpectRcode          string   `yaml:"expect_rcode"`
	ExpectAnswerContains string   `yaml:"expect_answer_contains"`
}
