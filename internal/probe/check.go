// Package probe defines the checks an agent runs: the schema of a check and
// of each kind's options, their defaults and validation, and the registry
// of kinds the agent's probes (agent/probe) plug into. It links no probe
// implementation, so the collector validates remote check configs with it
// and stays free of Chromium, ICMP and DNS libraries.
//
// It is named probe, like the package that runs the checks, because the
// types' names reach users: a misspelt key is "unknown field … in
// probe.Check".
package probe

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// Check is one configured check: what to measure, how often and how.
// Only the options of the check's own kind are read.
type Check struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`
	Target   string        `yaml:"target"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`

	HTTP    HTTPOptions    `yaml:"http"`
	DNS     DNSOptions     `yaml:"dns"`
	TCP     TCPOptions     `yaml:"tcp"`
	TLS     TLSOptions     `yaml:"tls"`
	ICMP    ICMPOptions    `yaml:"icmp"`
	Browser BrowserOptions `yaml:"browser"`
	CDN     CDNOptions     `yaml:"cdn"`

	Traceroute TracerouteOptions `yaml:"traceroute"`
}

// KindCDN is the kind of a cdn check: the same object through several
// CDNs. It produces http results (one per member), so it is a check kind
// but not a result kind.
const KindCDN = "cdn"

// Defaults and limits of every check.
const (
	DefaultInterval = 60 * time.Second
	MinInterval     = time.Second
)

// kinds is the one place check kinds register: each kind with its own
// validation of target and options (nil: nothing beyond what every check
// is held to). agent/probe registers a probe under each of these names.
var kinds = map[string]func(c *Check) error{
	result.KindDNS:        validateDNS,
	result.KindTCP:        nil,
	result.KindTLS:        nil,
	result.KindHTTP:       validateHTTP,
	result.KindICMP:       nil,
	result.KindBrowser:    nil,
	result.KindTraceroute: validateTraceroute,
	KindCDN:               nil,
}

// Kinds lists the check kinds in the order messages name them: the result
// kinds, then cdn.
func Kinds() []string {
	return append(append([]string(nil), result.Kinds...), KindCDN)
}

// SetDefaults fills what the check left out; a relative http.ca_file or
// dns.ca_file is relative to dir, the directory of the file the check came from.
func (c *Check) SetDefaults(dir string) {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = c.Interval * 4 / 5
	}
	if c.HTTP.CAFile != "" && !filepath.IsAbs(c.HTTP.CAFile) {
		c.HTTP.CAFile = filepath.Join(dir, c.HTTP.CAFile)
	}
	if c.DNS.CAFile != "" && !filepath.IsAbs(c.DNS.CAFile) {
		c.DNS.CAFile = filepath.Join(dir, c.DNS.CAFile)
	}
}

// FieldError is what is wrong with a check, and the YAML key of the field
// it is about ("" for the check as a whole) so a file's error can point at
// its line.
type FieldError struct {
	Key string
	Err error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErrorf(key, format string, args ...any) *FieldError {
	return &FieldError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Validate checks c, defaults set, on its own (that names are unique is the
// list's business): the fields every check has, then its kind's target and
// options. runnable, when not nil, says whether this build has a probe for
// a kind (the agent passes its registry; the collector runs no probe).
// Errors are *FieldError.
func (c *Check) Validate(runnable func(kind string) bool) error {
	validate, known := kinds[c.Kind]
	switch {
	case c.Name == "":
		return fieldErrorf("", "name must not be empty")
	case !known:
		return fieldErrorf("kind", "unknown kind %q (want one of %s)", c.Kind, strings.Join(Kinds(), ", "))
	case runnable != nil && !runnable(c.Kind):
		return fieldErrorf("kind", "kind %q has no probe in this build", c.Kind)
	case c.Target == "" && c.Kind != KindCDN: // a cdn check's targets are its members
		return fieldErrorf("target", "target must not be empty")
	case c.Interval < MinInterval:
		return fieldErrorf("interval", "interval %v is below the minimum %v", c.Interval, MinInterval)
	case c.Timeout < 0:
		return fieldErrorf("timeout", "timeout %v must be positive", c.Timeout)
	case c.Timeout > c.Interval:
		return fieldErrorf("timeout", "timeout %v is longer than interval %v; lower it or raise the interval", c.Timeout, c.Interval)
	}
	if validate == nil {
		return nil
	}
	if err := validate(c); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return fe
		}
		return &FieldError{Err: err}
	}
	return nil
}
