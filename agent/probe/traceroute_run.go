package probe

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// tracePath is what a trace found, and why it stopped short if it did.
type tracePath struct {
	*result.Traceroute
	unreachFrom netip.Addr // a router that said the destination is unreachable
}

// sentProbe is one probe in flight: its hop and when it left.
type sentProbe struct {
	hop *hopStats
	at  time.Time
}

// trace probes TTL after TTL: o.Probes probes each, then waits until all
// are answered or o.ProbeTimeout has passed since the last, and stops at
// the TTL the destination answered (or a router said it cannot be
// reached). Answers that come late still count for their own hop.
func trace(ctx context.Context, w *wire, o TracerouteOptions) tracePath {
	path := tracePath{Traceroute: &result.Traceroute{Proto: o.Protocol, Port: o.Port}}
	inFlight := map[uint16]sentProbe{}
	var hops []*hopStats
	next := uint16(rand.IntN(0xfff0) + 1)
	for ttl := o.FirstTTL; ttl <= o.MaxHops && ctx.Err() == nil; ttl++ {
		hop := &hopStats{ttl: ttl}
		hops = append(hops, hop)
		for range o.Probes {
			if ctx.Err() != nil {
				break
			}
			id := next
			if next++; next == 0xffff { // 0 and 0xffff are not UDP checksums
				next = 1
			}
			hop.sent++
			at := time.Now() // before sending: the answer can be read before the send returns
			if err := w.sendProbe(ttl, id); err != nil {
				continue // counts as lost: a local refusal, not an answer
			}
			inFlight[id] = sentProbe{hop: hop, at: at}
			collect(ctx, w, inFlight, &path, time.Now().Add(probeGap), nil)
		}
		collect(ctx, w, inFlight, &path, time.Now().Add(o.ProbeTimeout), hop)
		if path.Reached || path.unreachFrom.IsValid() {
			break
		}
	}
	for _, h := range hops {
		path.Hops = append(path.Hops, h.hop())
	}
	return path
}

// collect takes answers until the deadline, or until every probe of hop
// (when given) is answered.
func collect(ctx context.Context, w *wire, inFlight map[uint16]sentProbe, path *tracePath, until time.Time, hop *hopStats) {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for hop == nil || hop.received < hop.sent {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case a := <-w.answers:
			p, ok := inFlight[a.id]
			if !ok {
				continue // a duplicate, or not ours
			}
			delete(inFlight, a.id)
			p.hop.add(a.from, a.at.Sub(p.at))
			path.Reached = path.Reached || a.final
			if a.unreach && !path.unreachFrom.IsValid() {
				path.unreachFrom = a.from
			}
		}
	}
}

// hopStats gathers one TTL's answers.
type hopStats struct {
	ttl, sent, received int
	rtts                []time.Duration
	from                map[netip.Addr]int
}

func (h *hopStats) add(from netip.Addr, rtt time.Duration) {
	if h.from == nil {
		h.from = map[netip.Addr]int{}
	}
	h.received++
	h.rtts = append(h.rtts, rtt)
	h.from[from]++
}

// hop summarises the answers as ping does: loss, min/avg/max and the
// population standard deviation; the address that answered most.
func (h *hopStats) hop() result.TraceHop {
	out := result.TraceHop{TTL: h.ttl, Sent: h.sent, Received: h.received, LossPct: 100}
	if h.sent > 0 {
		out.LossPct = math.Round(float64(h.sent-h.received)/float64(h.sent)*1000) / 10
	}
	if h.received == 0 {
		return out
	}
	var best netip.Addr
	for a, n := range h.from {
		if n > h.from[best] || n == h.from[best] && a.Less(best) {
			best = a
		}
	}
	out.Addr = best.String()
	lo, hi, sum := h.rtts[0], h.rtts[0], time.Duration(0)
	for _, r := range h.rtts {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	mean := float64(sum) / float64(len(h.rtts))
	var sq float64
	for _, r := range h.rtts {
		sq += (float64(r) - mean) * (float64(r) - mean)
	}
	out.MinMs, out.MaxMs = result.Ms(lo), result.Ms(hi)
	out.AvgMs = result.Ms(time.Duration(mean))
	out.StddevMs = result.Ms(time.Duration(math.Sqrt(sq / float64(len(h.rtts)))))
	return out
}
