// Command gen writes Meridian's Grafana dashboards as JSON into the
// dashboards folder: go run ./dashboards/gen.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meridian-net/meridian/dashboards"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	dir := fs.String("dir", "dashboards", "folder to write the dashboards into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	boards, err := dashboards.Build()
	if err != nil {
		return err
	}
	for name, b := range boards {
		if err := os.WriteFile(filepath.Join(*dir, name), b, 0o644); err != nil {
			return fmt.Errorf("cannot write dashboard %q: %w", name, err)
		}
	}
	return nil
}
