//go:build !linux

package hostnoise

import "errors"

func readClock() (Clock, error) {
	return Clock{}, errors.New("cannot read the clock sync state: only Linux is supported")
}
