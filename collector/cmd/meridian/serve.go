package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/steering/export"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/cliutil"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the collector: ingest results, serve the beacon script, health and metrics",
		Flags: append(append(append(append(clickhouseFlags(), beaconFlags()...), retentionFlags("retention-")...), limitFlags()...),
			&cli.DurationFlag{Name: "retention-every", Usage: "drop day partitions past the --retention-* windows this often (for example 1h); off by default"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", EnvVars: []string{"MERIDIAN_LISTEN"}, Usage: "listen on `ADDR`"},
			&cli.StringFlag{Name: "spool-dir", Value: "var/collector-spool", EnvVars: []string{"MERIDIAN_SPOOL_DIR"}, Usage: "the journal: results and beacons are fsynced here before they are acknowledged, and wait here for ClickHouse"},
			&cli.Int64Flag{Name: "spool-max-bytes", Value: 1 << 30, Usage: "journal cap per kind; past it (ClickHouse away or slow for long) ingest answers 503 with Retry-After"},
			&cli.DurationFlag{Name: "flush-interval", Value: 250 * time.Millisecond, Usage: "longest an acknowledged row waits before its batch is inserted into ClickHouse"},
			&cli.BoolFlag{Name: "steering", Usage: "compute and publish steering weights here (on exactly one collector; every collector serves GET /v1/steering)"},
			&cli.DurationFlag{Name: "steering-every", Value: 15 * time.Second, Usage: "with --steering: recompute every `D`"},
			&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"MERIDIAN_TLS_CERT"}, Usage: "serve HTTPS (TLS 1.2+) with the PEM certificate chain in `FILE`; with --tls-key; both reread on SIGHUP"},
			&cli.StringFlag{Name: "tls-key", EnvVars: []string{"MERIDIAN_TLS_KEY"}, Usage: "the PEM private key `FILE` of --tls-cert"},
		),
		Action: serve,
	}
}

func serve(c *cli.Context) error {
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	setMemoryLimit(c)
	retention, err := retentionDays(c, "serve", "retention-")
	if err != nil {
		return err
	}
	cert, err := loadTLS(c)
	if err != nil {
		return err
	}
	stopReload := reloadOnHUP(c.Context, cert, logger)
	defer stopReload()
	conn, err := store.Open(c.Context, storeOptions(c))
	if err != nil {
		return err
	}
	defer conn.Close()
	if every := c.Duration("retention-every"); every > 0 {
		go retentionLoop(c.Context, conn, retentionStoreOptions(c), retention, every, logger)
	}
	writer, err := store.NewWriter(conn, store.WriterOptions{
		MaxDelay:      c.Duration("flush-interval"),
		SpoolDir:      filepath.Join(c.String("spool-dir"), "results"),
		SpoolMaxBytes: c.Int64("spool-max-bytes"),
		Logf:          func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return err
	}
	defer writer.Close()
	heartbeats := store.NewHeartbeatWriter(conn, time.Second, func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) })
	defer heartbeats.Close()
	cfg := server.Config{
		Agents:       store.NewAgentCache(conn),
		AgentConfigs: store.NewAgentConfigCache(conn),
		Heartbeats:   heartbeats,
		Writer:       writer,
		Ready:        func(ctx context.Context) error { return conn.Ping(ctx) },
		Logger:       logger,
		Limits:       limitsFrom(c),
		Readers:      store.NewTokenCache(conn),
		Decisions:    func(ctx context.Context) (*steering.Published, error) { return steering.Latest(ctx, conn) },
		SteeringPolicy: func(ctx context.Context) (*steering.Policy, error) {
			p, _, _, err := steering.LoadPolicy(ctx, conn)
			return p, err
		},
	}
	if c.Bool("steering") {
		r := &steering.Runner{
			Conn:         conn,
			AgentCountry: func(ctx context.Context) (map[string]string, error) { return store.AgentCountries(ctx, conn) },
			Logf:         func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) },
		}
		r.Pusher = &steering.Pusher{Conn: conn, Render: export.Renderers, Logf: r.Logf}
		go r.Run(c.Context, c.Duration("steering-every"))
	}
	closeBeacons, err := setupBeacons(c, conn, store.WriterOptions{
		MaxRows:       beaconBatchRows,
		MemBytes:      beaconMemBytes,
		Queue:         beaconQueue,
		MaxDelay:      c.Duration("flush-interval"),
		SpoolDir:      filepath.Join(c.String("spool-dir"), "beacons"),
		SpoolMaxBytes: c.Int64("spool-max-bytes"),
		Logf:          func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) },
	}, &cfg)
	if err != nil {
		return err
	}
	defer closeBeacons()
	return listenAndServe(c, server.New(cfg), cert, logger)
}

// The beacon journal's in-memory rows are bounded by the bytes of their
// journal lines, so large beacons cannot hold more memory than small ones:
// 4 MiB is about 3,000 beacons like rum-js/BEACON.md's example (a 1.3 KB
// line; decoded, such a beacon takes about 2 KB, in one allocation for its
// optional parts and one for its strings), about a fifth of a second of
// what this 2-core machine takes. Under saturation ClickHouse falls behind and rows are read
// back from the journal whatever this size; decoded beacons held waiting
// then only cost the garbage collector. make bench, side by side: 12 MiB
// peaked at 193 MiB RSS (209 at twice the load), 4 MiB with a 128 MiB
// --memory-limit at 140 (145), at the same or more 2xx/s. An insert of
// 5,000 builds its columns a block of 1,000 rows at a time; with 2,500,
// ClickHouse took 104 µs per beacon against 58-65 (one run): its cost is
// mostly per insert.
//
// The journal's queue of beacons waiting for its fsync is bounded by bytes
// in the server (--beacon-inflight-bytes), so its own count bound is set
// past what that budget admits: it no longer sheds first.
const (
	beaconBatchRows = 5000
	beaconMemBytes  = 4 << 20
	beaconQueue     = 1 << 14
)

// loadTLS loads --tls-cert and --tls-key; nil when neither is given.
func loadTLS(c *cli.Context) (*server.Cert, error) {
	certFile, keyFile := c.String("tls-cert"), c.String("tls-key")
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case keyFile == "":
		return nil, cliutil.UsageError("--tls-cert needs --tls-key FILE (or MERIDIAN_TLS_KEY): the certificate's private key")
	case certFile == "":
		return nil, cliutil.UsageError("--tls-key needs --tls-cert FILE (or MERIDIAN_TLS_CERT): the certificate chain")
	}
	return server.LoadCert(certFile, keyFile)
}

// listenAndServe serves handler on --listen, over TLS when cert is not nil,
// until c.Context is done.
func listenAndServe(c *cli.Context, handler http.Handler, cert *server.Cert, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (is another collector running? pick another --listen)", c.String("listen"), err)
	}
	srv := server.NewHTTPServer(handler, server.Timeouts{
		ReadHeader: c.Duration("read-header-timeout"), Read: c.Duration("read-timeout"), Idle: c.Duration("idle-timeout"),
	})
	serveLn, scheme := srv.Serve, "http://"
	if cert != nil {
		// ServeTLS keeps HTTP/2 on (it adds h2 to the config's protocols).
		srv.TLSConfig = cert.TLSConfig()
		serveLn = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		scheme = "https://"
	}
	logger.Info("collector listening", "addr", scheme+ln.Addr().String(), "clickhouse", c.String("clickhouse"), "database", c.String("database"))
	errc := make(chan error, 1)
	go func() { errc <- serveLn(ln) }()
	select {
	case err := <-errc:
		return err
	case <-c.Context.Done():
	}
	logger.Info("shutting down: finishing requests in flight")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// reloadOnHUP rereads cert's files on SIGHUP until stop is called. SIGHUP
// never stops the collector, with TLS or without.
func reloadOnHUP(ctx context.Context, cert *server.Cert, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if cert != nil {
			cert.ReloadOn(ctx, hup, logger)
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: nothing to reload (no --tls-cert)")
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// limitFlags are serve's flags against overload, floods and slow clients
// (server.Limits, server.Timeouts).
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "beacon-inflight-bytes", Value: 8 << 20, Usage: "memory for beacons between reading and answering (decoded, waiting for the journal's fsync), each counted as 3 × its body + 4 KiB (about 1,000 typical beacons, far more than an fsync needs to be shared well); past it beacons get 503 with Retry-After"},
		&cli.Int64Flag{Name: "results-inflight-bytes", Value: 16 << 20, Usage: "agents' result batches (decompressed) held between reading and answering; past it agents get 503 with Retry-After and keep the batch"},
		&cli.Int64Flag{Name: "memory-limit", Value: 112 << 20, Usage: "soft limit in bytes on the Go runtime's memory (as GOMEMLIMIT, which wins when set and this flag is not): near it the garbage collector works harder instead of letting the heap double. Measured on 2 cores at full load and at twice it (make bench): 112 MiB held peak RSS to 128 MiB at both; 128 MiB held it to 144 MiB at about the same 2xx/s. Raise it on a bigger machine; 0: none"},
		&cli.Float64Flag{Name: "source-rate", Value: 50, Usage: "beacons per second from one client address (IPv6: per /64; after --trusted-proxy; loopback not limited); past it 429 with Retry-After; 0: no limit"},
		&cli.IntFlag{Name: "source-burst", Usage: "beacons one client address may send at once above --source-rate (default two seconds' worth)"},
		&cli.Float64Flag{Name: "site-rate", Usage: "beacons per second for one site, so a flooding site cannot crowd out the others on a shared collector (for example a tenth of what it takes); past it 429 with Retry-After; default 0: no limit"},
		&cli.IntFlag{Name: "site-burst", Usage: "beacons one site may send at once above --site-rate (default two seconds' worth)"},
		&cli.DurationFlag{Name: "beacon-read-timeout", Value: 10 * time.Second, Usage: "longest a beacon's body may take to arrive; a client dribbling it is cut"},
		&cli.DurationFlag{Name: "read-header-timeout", Value: 10 * time.Second, Usage: "longest a request's headers may take to arrive; a client dribbling them is cut"},
		&cli.DurationFlag{Name: "read-timeout", Value: time.Minute, Usage: "longest any whole request may take to arrive (agents' batches on slow links)"},
		&cli.DurationFlag{Name: "idle-timeout", Value: 2 * time.Minute, Usage: "longest a kept-alive connection may wait for its next request"},
	}
}

// setMemoryLimit applies --memory-limit, unless GOMEMLIMIT is set and the
// flag is not (the runtime has applied it then).
func setMemoryLimit(c *cli.Context) {
	if os.Getenv("GOMEMLIMIT") != "" && !c.IsSet("memory-limit") {
		return
	}
	if n := c.Int64("memory-limit"); n > 0 {
		debug.SetMemoryLimit(n)
	}
}

func limitsFrom(c *cli.Context) server.Limits {
	return server.Limits{
		BeaconInflightBytes:  c.Int64("beacon-inflight-bytes"),
		ResultsInflightBytes: c.Int64("results-inflight-bytes"),
		SourceRate:           c.Float64("source-rate"),
		SourceBurst:          c.Int("source-burst"),
		SiteRate:             c.Float64("site-rate"),
		SiteBurst:            c.Int("site-burst"),
		BeaconReadTimeout:    c.Duration("beacon-read-timeout"),
	}
}
