package probe

import (
	"encoding/binary"
	"net/netip"
)

// Traceroute probes are built Paris-traceroute style: everything a router
// may hash to pick one of several equal-cost paths (addresses, protocol,
// ports, and for ICMP the first four bytes of the ICMP header: type, code
// and checksum) is the same in every probe of a run, so all probes follow
// one path and the hops found are one path's, not a mix. What tells the
// probes apart lives outside the flow identifier and inside the eight
// bytes of transport header a router quotes back in its ICMP error:
//
//	icmp: the echo sequence number; two payload bytes keep the checksum constant
//	udp:  the UDP checksum itself, steered through two payload bytes
//	tcp:  the SYN's sequence number
const (
	icmpEchoRequest   = 8
	icmpEchoReply     = 0
	icmpUnreachable   = 3
	icmpTimeExceeded  = 11
	icmpPortUnreach   = 3 // code of icmpUnreachable
	traceProbePayload = 12
	protoICMP         = 1
	protoTCP          = 6
	protoUDP          = 17
	tcpFlagSYN        = 0x02
	tcpFlagRST        = 0x04
	tcpFlagACK        = 0x10
)

// onesSum is the 16-bit one's complement sum of b (RFC 1071), folded,
// added to sum.
func onesSum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// steer writes the two bytes at b[at:] so that the one's complement sum of
// pseudo and b (with those bytes zero) becomes ^want: the internet checksum
// over them is then want.
func steer(pseudo, b []byte, at int, want uint16) {
	binary.BigEndian.PutUint16(b[at:], 0)
	s := onesSum(uint32(onesSum(0, pseudo)), b)
	// x + y in one's complement: fold the carry back in.
	add := func(x, y uint16) uint16 { v := uint32(x) + uint32(y); return uint16(v>>16 + v&0xffff) }
	binary.BigEndian.PutUint16(b[at:], add(^want, ^s))
}

// pseudoHeader is the IPv4 pseudo-header UDP and TCP checksums cover.
func pseudoHeader(src, dst netip.Addr, proto byte, length int) []byte {
	p := make([]byte, 12)
	s, d := src.As4(), dst.As4()
	copy(p[0:4], s[:])
	copy(p[4:8], d[:])
	p[9] = proto
	binary.BigEndian.PutUint16(p[10:], uint16(length))
	return p
}

// icmpEcho is an echo request whose checksum is the same for every seq of
// an id: the last two payload bytes absorb the change of seq.
func icmpEcho(id, seq uint16) []byte {
	b := make([]byte, 8+traceProbePayload)
	b[0] = icmpEchoRequest
	binary.BigEndian.PutUint16(b[4:], id)
	copy(b[8:], "meridian")
	want := ^onesSum(0, append([]byte{icmpEchoRequest, 0, 0, 0}, b[4:6]...)) // the checksum of seq 0
	binary.BigEndian.PutUint16(b[6:], seq)
	steer(nil, b, len(b)-2, want)
	binary.BigEndian.PutUint16(b[2:], want)
	return b
}

// udpProbe is a UDP datagram whose checksum is id (never 0: that means
// "no checksum" in IPv4); ports and length are the same for every id.
func udpProbe(src, dst netip.Addr, sport, dport, id uint16) []byte {
	b := make([]byte, 8+traceProbePayload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], "meridian")
	steer(pseudoHeader(src, dst, protoUDP, len(b)), b, len(b)-2, id)
	binary.BigEndian.PutUint16(b[6:], id)
	return b
}

// tcpSYN is a SYN with an MSS option, as any client's; only seq differs
// between probes.
func tcpSYN(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = 6 << 4 // data offset: six 32-bit words
	b[13] = tcpFlagSYN
	binary.BigEndian.PutUint16(b[14:], 64240) // window
	copy(b[20:], []byte{2, 4, 0x05, 0xb4})    // MSS 1460
	sum := onesSum(uint32(onesSum(0, pseudoHeader(src, dst, protoTCP, len(b)))), b)
	binary.BigEndian.PutUint16(b[16:], ^sum)
	return b
}

// icmpMessage is what an ICMP message says about a probe: an echo reply
// (id and seq), or an error quoting the probe's IP header and first eight
// transport bytes.
type icmpMessage struct {
	typ, code uint8
	id, seq   uint16 // echo reply
	quoted    quote  // time exceeded, unreachable
}

// quote is the start of the probe an ICMP error quotes.
type quote struct {
	proto uint8
	dst   netip.Addr
	l4    [8]byte
}

// parseICMP reads an ICMPv4 message (without its IP header). ok is false
// for messages that cannot concern a probe.
func parseICMP(b []byte) (m icmpMessage, ok bool) {
	if len(b) < 8 {
		return m, false
	}
	m.typ, m.code = b[0], b[1]
	switch m.typ {
	case icmpEchoReply:
		m.id, m.seq = binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
		return m, true
	case icmpTimeExceeded, icmpUnreachable:
		ip := b[8:]
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return m, false
		}
		ihl := int(ip[0]&0x0f) * 4
		if ihl < 20 || len(ip) < ihl+8 {
			return m, false
		}
		m.quoted.proto = ip[9]
		m.quoted.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		copy(m.quoted.l4[:], ip[ihl:ihl+8])
		return m, true
	}
	return m, false
}

// tcpReply is the part of a TCP segment that tells whether it answers a
// SYN probe: ports, flags and the acknowledged sequence number.
type tcpReply struct {
	sport, dport uint16
	ack          uint32
	flags        uint8
}

func parseTCP(b []byte) (tcpReply, bool) {
	if len(b) < 20 {
		return tcpReply{}, false
	}
	return tcpReply{sport: binary.BigEndian.Uint16(b[0:]), dport: binary.BigEndian.Uint16(b[2:]),
		ack: binary.BigEndian.Uint32(b[8:]), flags: b[13]}, true
}
