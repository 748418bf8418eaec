package spool

import (
	"os"
	"syscall"
)

// datasync flushes f's data, and its size if that changed, but not its
// times: cheaper than fsync for a file overwritten in place.
func datasync(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = syscall.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}
