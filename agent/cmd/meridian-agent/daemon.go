package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/agent/config"
	"github.com/meridian-net/meridian/agent/sched"
	"github.com/meridian-net/meridian/agent/ship"
	"github.com/meridian-net/meridian/internal/result"
)

// How long shutdown waits for runs in flight, then for the last ship.
var stopTimeout, flushTimeout = 5 * time.Second, 5 * time.Second

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Usage: "the agent's YAML config `FILE` (required)"}
}

// loadConfig loads --config; a missing flag is bad usage.
func loadConfig(c *cli.Context) (*config.Config, error) {
	if c.String("config") == "" {
		return nil, usageError("%s needs --config FILE (see agent/testdata/local.yml for an example)", c.Command.Name)
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
			&cli.StringFlag{Name: "data-dir", EnvVars: []string{"MERIDIAN_DATA_DIR"}, Value: "var/agent", Usage: "local state `DIR`"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "serve /metrics on `ADDR`, such as 127.0.0.1:9101"},
		},
		Action: runAction,
	}
}

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
		return usageError("no collector: set collector in %s, --collector or MERIDIAN_COLLECTOR", c.String("config"))
	case config.ValidateCollector(cfg.Collector) != nil:
		return usageError("%v", config.ValidateCollector(cfg.Collector))
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
	return daemon(c.Context, cfg, logger)
}

// daemon runs until ctx is done, then stops the scheduler and flushes.
func daemon(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	q := ship.NewMemQueue(cfg.Ship.MaxQueue, logger)
	shipper := ship.New(q, ship.Options{Collector: cfg.Collector, Token: cfg.Token,
		Interval: cfg.Ship.Interval, Batch: cfg.Ship.Batch, Logger: logger})
	sc := sched.New(cfg.Checks, q, sched.Options{Agent: cfg.Agent.Name, Logger: logger})
	logger.Info("meridian-agent started", "version", version, "contract", result.Version,
		"agent", cfg.Agent.Name, "region", cfg.Agent.Region, "checks", len(cfg.Checks), "collector", cfg.Collector)
	sc.Start()
	shipCtx, stopShip := context.WithCancel(context.Background())
	shipped := make(chan struct{})
	go func() { shipper.Run(shipCtx); close(shipped) }()

	<-ctx.Done()
	logger.Info("stopping: waiting for checks in flight", "deadline", stopTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	var errs []error
	if err := sc.Stop(stopCtx); err != nil {
		errs = append(errs, err)
	}
	stopShip()
	<-shipped
	flushCtx, cancel2 := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel2()
	if err := shipper.Flush(flushCtx); err != nil {
		errs = append(errs, fmt.Errorf("%w; %d results not shipped", err, q.Len()))
	}
	st := shipper.Stats()
	logger.Info("stopped", "shipped", st.Shipped, "failed_posts", st.FailedPosts, "dropped", q.Dropped()+st.Rejected+st.Invalid)
	return errors.Join(errs...)
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
