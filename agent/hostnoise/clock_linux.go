package hostnoise

import (
	"time"

	"golang.org/x/sys/unix"
)

// readClock asks the kernel (adjtimex, read-only: modes 0) whether an NTP
// daemon keeps the clock in sync and by how much it is still off.
func readClock() (Clock, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return Clock{}, err
	}
	return clockFromTimex(state, int64(tx.Status), int64(tx.Offset)), nil
}

func clockFromTimex(state int, status, offset int64) Clock {
	c := Clock{Synced: state != unix.TIME_ERROR && status&unix.STA_UNSYNC == 0}
	if status&unix.STA_NANO != 0 {
		c.Offset = time.Duration(offset)
	} else {
		c.Offset = time.Duration(offset) * time.Microsecond
	}
	return c
}
