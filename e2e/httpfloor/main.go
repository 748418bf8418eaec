// Command httpfloor is the floor TestAgentFootprint measures the agent's
// CPU per http check against: a bare net/http client making the same
// fresh-connection GETs on the same schedule (N checks, each every
// interval, first runs spread over one interval), doing nothing with the
// answers. Whatever the agent spends above it per check is its own cost:
// phase timing, the spool, shipping.
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	url := flag.String("url", "", "GET this `URL`")
	checks := flag.Int("checks", 40, "how many checks share the schedule")
	every := flag.Duration("interval", 12*time.Second, "each check's interval")
	ua := flag.String("user-agent", "httpfloor", "User-Agent, so the target can count these GETs apart")
	flag.Parse()
	if *url == "" || *checks <= 0 || *every <= 0 {
		log.Fatal("usage: httpfloor --url URL [--checks N] [--interval D]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	for i := range *checks {
		stagger := time.Duration(i) * *every / time.Duration(*checks)
		wg.Go(func() { loop(ctx, stagger, *every, *url, *ua) })
	}
	wg.Wait()
}

// loop is one check: a GET every interval after its stagger.
func loop(ctx context.Context, stagger, every time.Duration, url, ua string) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(stagger):
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		get(ctx, url, ua)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// get makes one GET over a fresh connection, as the agent's http probe
// does (a new transport per run, no keep-alive), and reads the body.
func get(ctx context.Context, url, ua string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("User-Agent", ua)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		log.Print(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
