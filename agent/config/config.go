// Package config owns the agent's YAML configuration: strict decoding,
// defaults, and validation with file:line errors.
package config

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/meridian-net/meridian/agent/probe"
	"github.com/meridian-net/meridian/agent/ship"
	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/yamlconf"
)

// Defaults and limits.
const (
	DefaultShipInterval  = time.Second
	DefaultShipBatch     = 500
	DefaultMaxSpoolBytes = 256 << 20
	MinMaxSpoolBytes     = 1 << 20
	DefaultCheckInterval = checkdef.DefaultInterval
	MinCheckInterval     = checkdef.MinInterval
	MinShipInterval      = 10 * time.Millisecond
)

// Config is the agent's configuration file.
type Config struct {
	Agent     Agent  `yaml:"agent"`
	Collector string `yaml:"collector"` // --collector / MERIDIAN_COLLECTOR override it
	// CollectorCA is a PEM file holding the private CA that signed the
	// collector's certificate, trusted besides the system roots; relative
	// to the config file's directory. --ca / MERIDIAN_CA override it.
	CollectorCA string           `yaml:"collector_ca"`
	Token       string           `yaml:"token"` // --token / MERIDIAN_TOKEN override it
	Ship        Ship             `yaml:"ship"`
	Checks      []checkdef.Check `yaml:"checks"`

	// Version identifies the file's contents (a hash of its bytes), so
	// agents running the same config show the same number.
	Version uint32 `yaml:"-"`
}

// Agent names this agent; informational, the collector knows it by its token.
type Agent struct {
	Name   string `yaml:"name"`
	Region string `yaml:"region"`
}

// Ship says how results leave for the collector.
type Ship struct {
	Interval time.Duration `yaml:"interval"`
	Batch    int           `yaml:"batch"`
	// MaxSpoolBytes caps the on-disk spool (default 256MiB); past it the
	// oldest results are dropped, counted and logged.
	MaxSpoolBytes ByteSize `yaml:"max_spool_bytes"`
}

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates b; name prefixes errors as in "name:line: …".
func Parse(name string, b []byte) (*Config, error) {
	var cfg Config
	doc, err := yamlconf.Decode(name, b, &cfg)
	if errors.Is(err, yamlconf.ErrEmpty) {
		return nil, fmt.Errorf("%s: the config is empty (want at least agent, collector and checks)", name)
	}
	if err != nil {
		return nil, err
	}
	cfg.setDefaults(filepath.Dir(name))
	h := fnv.New32a()
	h.Write(b)
	cfg.Version = h.Sum32()
	if err := cfg.validate(doc); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// setDefaults fills what the file left out; relative paths in it are
// relative to dir, the config file's directory.
func (c *Config) setDefaults(dir string) {
	if c.Agent.Name == "" {
		c.Agent.Name, _ = os.Hostname()
	}
	if c.CollectorCA != "" && !filepath.IsAbs(c.CollectorCA) {
		c.CollectorCA = filepath.Join(dir, c.CollectorCA)
	}
	if c.Ship.Interval == 0 {
		c.Ship.Interval = DefaultShipInterval
	}
	if c.Ship.Batch == 0 {
		c.Ship.Batch = DefaultShipBatch
	}
	if c.Ship.MaxSpoolBytes == 0 {
		c.Ship.MaxSpoolBytes = DefaultMaxSpoolBytes
	}
	for i := range c.Checks {
		c.Checks[i].SetDefaults(dir)
	}
}

func (c *Config) validate(l *yamlconf.Doc) error {
	if c.Collector != "" {
		if err := ValidateCollector(c.Collector); err != nil {
			return l.Errorf(err.Error(), "collector")
		}
	}
	if c.CollectorCA != "" {
		if _, err := ship.LoadCA(c.CollectorCA); err != nil {
			return l.Errorf(err.Error(), "collector_ca")
		}
	}
	switch {
	case c.Ship.Interval < MinShipInterval:
		return l.Errorf(fmt.Sprintf("ship.interval %v is below the minimum %v", c.Ship.Interval, MinShipInterval), "ship", "interval")
	case c.Ship.Batch < 1:
		return l.Errorf(fmt.Sprintf("ship.batch %d must be at least 1", c.Ship.Batch), "ship", "batch")
	case c.Ship.MaxSpoolBytes < MinMaxSpoolBytes:
		return l.Errorf(fmt.Sprintf("ship.max_spool_bytes %v is below the minimum %v", c.Ship.MaxSpoolBytes, ByteSize(MinMaxSpoolBytes)), "ship", "max_spool_bytes")
	}
	return checkdef.ValidateChecks(l, c.Checks, probe.Has)
}

// ValidateCollector checks a collector base URL.
func ValidateCollector(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("collector %q is not an http(s) URL such as http://127.0.0.1:8080", s)
	}
	return nil
}
