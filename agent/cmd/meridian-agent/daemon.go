package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/agent/config"
	"github.com/meridian-net/meridian/agent/hostnoise"
	"github.com/meridian-net/meridian/agent/sched"
	"github.com/meridian-net/meridian/agent/ship"
	"github.com/meridian-net/meridian/agent/spool"
	"github.com/meridian-net/meridian/internal/cliutil"
	"github.com/meridian-net/meridian/internal/result"
)

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Usage: "the agent's YAML config `FILE` (required)"}
}

// loadConfig loads --config; a missing flag is bad usage.
func loadConfig(c *cli.Context) (*config.Config, error) {
	if c.String("config") == "" {
		return nil, cliutil.UsageError("%s needs --config FILE (see agent/testdata/local.yml for an example)", c.Command.Name)
	}
	return config.Load(c.String("config"))
}

func checkConfigCommand() *cli.Command {
	return &cli.Command{
		Name:  "check-config",
		Usage: "validate a config file and say what is wrong, and where",
		Flags: []cli.Flag{configFlag()},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s: ok: agent %q, %d checks, collector %s\n",
				c.String("config"), cfg.Agent.Name, len(cfg.Checks), orNone(cfg.Collector))
			return nil
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none; set --collector or MERIDIAN_COLLECTOR)"
	}
	return s
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the checks on their intervals and ship the results",
		Flags: []cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "collector", EnvVars: []string{"MERIDIAN_COLLECTOR"}, Usage: "collector base `URL` (overrides the config)"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"MERIDIAN_TOKEN"}, Usage: "agent `TOKEN` (overrides the config; prefer the env var)"},
			&cli.StringFlag{Name: "ca", EnvVars: []string{"MERIDIAN_CA"},
				Usage: "trust the collector's certificate when the PEM CA in `FILE` signed it, besides the system roots (overrides collector_ca)"},
			&cli.BoolFlag{Name: "insecure-collector",
				Usage: "allow a plain http:// collector on another host (the token and results cross the network unencrypted)"},
			&cli.StringFlag{Name: "data-dir", EnvVars: []string{"MERIDIAN_DATA_DIR"}, Value: defaultDataDir,
				Usage: "local state `DIR`: results wait in DIR/spool, on disk, until the collector has them"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "serve /metrics on `ADDR`, such as 127.0.0.1:9101"},
			&cli.DurationFlag{Name: "stop-timeout", Value: defaultStopTimeout,
				Usage: "on SIGTERM, wait `D` for checks in flight, then abandon them (a last ship attempt follows)"},
			&cli.DurationFlag{Name: "config-poll", Value: defaultConfigPoll,
				Usage: "poll the collector for remote checks every `D` (0: never); a change applies without a restart"},
		},
		Action: runAction,
	}
}

// Defaults of run's flags.
const (
	defaultDataDir     = "./var/agent"
	defaultStopTimeout = 5 * time.Second
)

// flushTimeout bounds the last ship attempt on stop: whatever is left stays
// in the spool and goes on the next start.
const flushTimeout = 2 * time.Second

func runAction(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if c.IsSet("collector") {
		cfg.Collector = c.String("collector")
	}
	if c.IsSet("token") {
		cfg.Token = c.String("token")
	}
	switch {
	case cfg.Collector == "":
		return cliutil.UsageError("no collector: set collector in %s, --collector or MERIDIAN_COLLECTOR", c.String("config"))
	case config.ValidateCollector(cfg.Collector) != nil:
		return cliutil.UsageError("%v", config.ValidateCollector(cfg.Collector))
	case c.Duration("stop-timeout") <= 0:
		return cliutil.UsageError("--stop-timeout %v must be positive, such as 5s", c.Duration("stop-timeout"))
	case c.Duration("config-poll") < 0:
		return cliutil.UsageError("--config-poll %v must be 0 (never) or positive, such as 30s", c.Duration("config-poll"))
	}
	transport, err := collectorTransport(c, cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.String("data-dir"), 0o755); err != nil {
		return fmt.Errorf("cannot create data dir: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	if cfg.Token == "" {
		logger.Warn("no agent token: the collector will refuse results; set MERIDIAN_TOKEN (meridian agents add prints one)")
	}
	stopMetrics, err := serveMetrics(c.String("metrics-listen"), logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	return daemon(c.Context, cfg, daemonOptions{dataDir: c.String("data-dir"), stopTimeout: c.Duration("stop-timeout"),
		configPoll: c.Duration("config-poll"), heartbeat: defaultHeartbeatEvery, transport: transport}, logger)
}

// collectorTransport is how everything reaches the collector: its
// certificate verified against the system roots plus --ca (or
// collector_ca), and plain http only to this host unless
// --insecure-collector says otherwise.
func collectorTransport(c *cli.Context, cfg *config.Config) (http.RoundTripper, error) {
	if ship.PlainRemote(cfg.Collector) && !c.Bool("insecure-collector") {
		return nil, cliutil.UsageError("cannot send the token and results to %s in clear text: use an https:// collector "+
			"(meridian serve --tls-cert/--tls-key; --ca FILE here for a private CA), or pass --insecure-collector to accept plain http", cfg.Collector)
	}
	if c.IsSet("ca") {
		cfg.CollectorCA = c.String("ca")
	}
	if cfg.CollectorCA == "" {
		return ship.Transport(nil), nil
	}
	roots, err := ship.LoadCA(cfg.CollectorCA)
	if err != nil {
		return nil, cliutil.UsageError("%v", err)
	}
	return ship.Transport(roots), nil
}

type daemonOptions struct {
	dataDir     string
	stopTimeout time.Duration
	configPoll  time.Duration     // 0: no remote config
	heartbeat   time.Duration     // 0: no heartbeats
	transport   http.RoundTripper // to the collector; nil: http.DefaultTransport
}

// daemon measures and ships until ctx is done, then stops. The spool is the
// one place results go: the scheduler appends to it (fsynced before
// anything is sent) and the shipper deletes from it only after a 2xx, so a
// kill -9 at any moment loses nothing that was appended.
func daemon(ctx context.Context, cfg *config.Config, opts daemonOptions, logger *slog.Logger) error {
	lastErr := &lastError{}
	logger = captureErrors(logger, lastErr)
	sp, err := spool.Open(filepath.Join(opts.dataDir, "spool"), spool.Options{
		MaxBytes: int64(cfg.Ship.MaxSpoolBytes),
		Logf:     func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return err
	}
	defer sp.Close()
	q := sp.Queue()

	bg, stopBg := context.WithCancel(context.Background())
	defer stopBg()
	noise := hostnoise.New(hostnoise.Options{})
	noise.Sample() // so the first results carry the clock state
	go noise.Run(bg)

	shipper := ship.New(q, ship.Options{Collector: cfg.Collector, Token: cfg.Token, Interval: cfg.Ship.Interval, Batch: cfg.Ship.Batch,
		Client: &http.Client{Timeout: ship.DefaultPostTimeout, Transport: opts.transport}, Logger: logger})
	sc := sched.New(cfg.Checks, q, sched.Options{Agent: cfg.Agent.Name, Host: noise.Host, Logger: logger})
	exportInfo(cfg)
	logger.Info("meridian-agent started", "version", version, "contract", result.Version,
		"agent", cfg.Agent.Name, "region", cfg.Agent.Region, "checks", len(cfg.Checks), "collector", cfg.Collector,
		"data_dir", opts.dataDir, "spooled", q.Len())
	sc.Start()
	rc := newRemote(cfg, sc, func() (int64, int64) { return int64(sp.Len()), sp.Bytes() }, lastErr, logger)
	rc.client.Transport = opts.transport
	remoteCtx, stopRemote := context.WithCancel(bg)
	remoteDone := make(chan struct{})
	go func() { rc.run(remoteCtx, opts.configPoll, opts.heartbeat); close(remoteDone) }()
	shipCtx, stopShip := context.WithCancel(bg)
	shipped := make(chan struct{})
	go func() { shipper.Run(shipCtx); close(shipped) }()

	<-ctx.Done()
	logger.Info("stopping: waiting for checks in flight (signal again to exit at once; spooled results are safe)", "deadline", opts.stopTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), opts.stopTimeout)
	defer cancel()
	stopRemote() // no config change while stopping
	<-remoteDone
	if err := sc.Stop(stopCtx); err != nil {
		logger.Warn("stopped checks in flight without their results", "err", err)
	}
	// Every result the scheduler kept is in the spool now; shipping is a bonus.
	stopShip()
	<-shipped
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), flushTimeout)
	defer cancelFlush()
	if err := shipper.Flush(flushCtx); err != nil {
		logger.Warn("results left in the spool; they are sent on the next start", "spooled", q.Len(), "err", err)
	}
	st := shipper.Stats()
	logger.Info("stopped", "shipped", st.Shipped, "failed_posts", st.FailedPosts,
		"dropped", st.Rejected+st.Invalid, "spooled", q.Len())
	return nil
}

// exportInfo sets the gauges that describe this agent's build and config.
func exportInfo(cfg *config.Config) {
	metrics.GetOrCreateGauge(`meridian_agent_build_info{version="`+version+`"}`, nil).Set(1)
	metrics.GetOrCreateGauge("meridian_agent_config_version", nil).Set(float64(cfg.Version))
	metrics.GetOrCreateGauge("meridian_agent_config_checks", nil).Set(float64(len(cfg.Checks)))
}

// serveMetrics serves /metrics on addr, if one is given.
func serveMetrics(addr string, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for --metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		metrics.WritePrometheus(w, true)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	logger.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
