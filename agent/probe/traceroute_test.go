package probe

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

var (
	trSrc = netip.MustParseAddr("10.9.1.2")
	trDst = netip.MustParseAddr("10.9.4.2")
)

// valid says whether the internet checksum over pseudo and b checks out.
func valid(pseudo, b []byte) bool { return onesSum(uint32(onesSum(0, pseudo)), b) == 0xffff }

// Paris ICMP: type, code and checksum (what ECMP may hash) are the same
// for every seq of an id, and every checksum is right.
func TestParisICMPEcho(t *testing.T) {
	for _, id := range []uint16{1, 0x1234, 0xfffe, 0xffff} {
		first := icmpEcho(id, 0)
		for seq := 0; seq <= 0xffff; seq++ {
			b := icmpEcho(id, uint16(seq))
			if !bytes.Equal(b[:6], first[:6]) || binary.BigEndian.Uint16(b[6:]) != uint16(seq) || !valid(nil, b) {
				t.Fatalf("id %d seq %d: got % x, want the header % x with seq %d and a valid checksum", id, seq, b[:8], first[:6], seq)
			}
		}
	}
}

// Paris UDP: the 5-tuple and length never change; the checksum is the
// probe's id, and it is right.
func TestParisUDP(t *testing.T) {
	pseudo := pseudoHeader(trSrc, trDst, protoUDP, 8+traceProbePayload)
	for id := 1; id < 0xffff; id++ {
		b := udpProbe(trSrc, trDst, 40000, 33434, uint16(id))
		if binary.BigEndian.Uint16(b[0:]) != 40000 || binary.BigEndian.Uint16(b[2:]) != 33434 || len(b) != 8+traceProbePayload ||
			binary.BigEndian.Uint16(b[6:]) != uint16(id) || !valid(pseudo, b) {
			t.Fatalf("id %d: got % x", id, b)
		}
	}
}

// Paris TCP: ports fixed, the sequence number carries the probe.
func TestParisTCPSYN(t *testing.T) {
	for _, seq := range []uint32{0, 1, 0xdeadbeef, 0xffffffff} {
		b := tcpSYN(trSrc, trDst, 40001, 443, seq)
		if binary.BigEndian.Uint16(b[0:]) != 40001 || binary.BigEndian.Uint16(b[2:]) != 443 || binary.BigEndian.Uint32(b[4:]) != seq ||
			b[13] != tcpFlagSYN || !valid(pseudoHeader(trSrc, trDst, protoTCP, len(b)), b) {
			t.Errorf("seq %#x: got % x", seq, b)
		}
	}
}

// timeExceeded is what a router sends back: ICMP type 11 quoting the
// probe's IPv4 header and transport bytes.
func timeExceeded(proto byte, l4 []byte) []byte {
	ip := make([]byte, 20)
	ip[0], ip[9] = 0x45, proto
	s, d := trSrc.As4(), trDst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	return append(append([]byte{icmpTimeExceeded, 0, 0, 0, 0, 0, 0, 0}, ip...), l4[:8]...)
}

// Each protocol's answers are matched to the probe that caused them, and
// answers to someone else's probes are not.
func TestMatchAnswers(t *testing.T) {
	router := netip.MustParseAddr("10.9.2.1")
	w := &wire{src: trSrc, dst: trDst, sport: 40000, dport: 33434, icmpID: 77, seqBase: 0xfffffff0}
	for _, tc := range []struct {
		name, proto string
		msg         []byte
		from        netip.Addr
		wantID      uint16
		wantOK      bool
		final       bool
	}{
		{"udp time exceeded", "udp", timeExceeded(protoUDP, udpProbe(trSrc, trDst, 40000, 33434, 513)), router, 513, true, false},
		{"udp other port", "udp", timeExceeded(protoUDP, udpProbe(trSrc, trDst, 40002, 33434, 513)), router, 0, false, false},
		{"icmp time exceeded", "icmp", timeExceeded(protoICMP, icmpEcho(77, 9)), router, 9, true, false},
		{"icmp other id", "icmp", timeExceeded(protoICMP, icmpEcho(78, 9)), router, 0, false, false},
		{"icmp echo reply", "icmp", []byte{icmpEchoReply, 0, 0, 0, 0, 77, 0, 10}, trDst, 10, true, true},
		{"tcp time exceeded, seq wraps", "tcp", timeExceeded(protoTCP, tcpSYN(trSrc, trDst, 40000, 33434, 4)), router, 20, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.proto = tc.proto
			m, ok := parseICMP(tc.msg)
			if !ok {
				t.Fatal("did not parse")
			}
			a, ok := w.matchICMP(m, tc.from)
			if ok != tc.wantOK || ok && (a.id != tc.wantID || a.final != tc.final || a.from != tc.from) {
				t.Errorf("got %+v ok=%v, want id %d ok=%v final=%v", a, ok, tc.wantID, tc.wantOK, tc.final)
			}
		})
	}
	w.proto = "tcp"
	synAck := make([]byte, 20)
	binary.BigEndian.PutUint16(synAck[0:], 33434)
	binary.BigEndian.PutUint16(synAck[2:], 40000)
	binary.BigEndian.PutUint32(synAck[8:], 5)
	synAck[13] = tcpFlagSYN | tcpFlagACK
	if a, ok := w.matchTCP(synAck, trDst); !ok || a.id != 20 || !a.final {
		t.Errorf("SYN-ACK: got %+v ok=%v, want probe 20, final", a, ok)
	}
	if _, ok := w.matchTCP(synAck, router); ok {
		t.Error("a SYN-ACK from another host was matched")
	}
}

// A hop's summary: loss from sent and received, ping's statistics, and
// the address that answered most.
func TestHopStats(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.9")
	h := &hopStats{ttl: 3, sent: 4}
	h.add(b, 2*time.Millisecond)
	h.add(a, 4*time.Millisecond)
	h.add(b, 6*time.Millisecond)
	got := h.hop()
	if got.TTL != 3 || got.Addr != "192.0.2.9" || got.Sent != 4 || got.Received != 3 || got.LossPct != 25 ||
		*got.MinMs != 2 || *got.AvgMs != 4 || *got.MaxMs != 6 || *got.StddevMs < 1.63 || *got.StddevMs > 1.64 {
		t.Errorf("got %+v (min %v avg %v max %v sd %v)", got, *got.MinMs, *got.AvgMs, *got.MaxMs, *got.StddevMs)
	}
	silent := (&hopStats{ttl: 4, sent: 3}).hop()
	if silent.Addr != "" || silent.LossPct != 100 || silent.MinMs != nil || silent.StddevMs != nil {
		t.Errorf("a hop without answers: got %+v", silent)
	}
}
