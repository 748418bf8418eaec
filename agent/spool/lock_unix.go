//go:build unix

package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive flock on dir/LOCK so that two agents started
// with the same --data-dir cannot interleave writes. The kernel drops the
// lock when the process dies, kill -9 included.
func lockDir(dir string) (func() error, error) {
	name := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cannot lock spool dir %q: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock spool dir %q: %w (is another meridian-agent running with this data dir?)", dir, err)
	}
	return f.Close, nil
}
