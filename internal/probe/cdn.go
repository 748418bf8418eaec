package probe

// CDNOptions are the options of a cdn check: the same object fetched
// through each member, one http result per member (and per hop). The http
// options sit beside members and apply to every member.
//
//	cdn:
//	  members:
//	    cloudflare: https://cf.example.com/obj.bin
//	    origin: https://origin.example.com/obj.bin
//	  concurrency: 4
//	  cache_bust: true
type CDNOptions struct {
	Members     map[string]string `yaml:"members"`
	Concurrency int               `yaml:"concurrency"` // members fetched at once; default 4
	HTTPOptions `yaml:",inline"`
}
