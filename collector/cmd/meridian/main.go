// Command meridian is Meridian's server side: the collector, schema
// migrations, agent tokens and latency queries.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/meridian-net/meridian/internal/cliutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meridian:", err)
		os.Exit(cliutil.ExitCode(err))
	}
}
