package store

// lineBufs recycles the buffers that writes encode their lines into: the
// committer copies each into its group commit and hands it back. A
// beacon's line was the largest allocation of its request (make bench).
// A channel, not a sync.Pool: a slice goes through it without being boxed,
// and what it keeps is bounded.
type lineBufs chan []byte

const (
	lineBufsKept   = 256
	lineBufMaxKept = 16 << 10 // larger ones (result batches) are rarer: not kept
)

func newLineBufs() lineBufs { return make(lineBufs, lineBufsKept) }

// get returns an empty buffer, nil when none is kept.
func (f lineBufs) get() []byte {
	select {
	case b := <-f:
		return b
	default:
		return nil
	}
}

func (f lineBufs) put(b []byte) {
	if cap(b) == 0 || cap(b) > lineBufMaxKept {
		return
	}
	select {
	case f <- b[:0]:
	default:
	}
}
