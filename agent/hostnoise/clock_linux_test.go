package hostnoise

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestClockFromTimex(t *testing.T) {
	for _, tc := range []struct {
		state          int
		status, offset int64
		want           Clock
	}{
		{unix.TIME_OK, unix.STA_PLL, 1500, Clock{Synced: true, Offset: 1500 * time.Microsecond}},
		{unix.TIME_OK, unix.STA_PLL | unix.STA_NANO, 1500, Clock{Synced: true, Offset: 1500 * time.Nanosecond}},
		{unix.TIME_ERROR, unix.STA_UNSYNC, 0, Clock{}},
		{unix.TIME_OK, unix.STA_UNSYNC, 7, Clock{Offset: 7 * time.Microsecond}},
		{unix.TIME_ERROR, unix.STA_PLL, 0, Clock{}},
	} {
		if got := clockFromTimex(tc.state, tc.status, tc.offset); got != tc.want {
			t.Errorf("clockFromTimex(%d, %#x, %d): got %+v, want %+v", tc.state, tc.status, tc.offset, got, tc.want)
		}
	}
}
