// Command meridian-agent measures targets on its checks' intervals and
// ships the results to a Meridian collector.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/meridian-net/meridian/internal/cliutil"
)

func main() {
	// The agent's heap is small and short-lived (a few KiB per check); a
	// lower GC target keeps RSS under 20 MiB at 200 checks a minute for
	// about the same CPU (make bench). GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills at once: everything
	// spooled is on disk already.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meridian-agent:", err)
		os.Exit(cliutil.ExitCode(err))
	}
}
