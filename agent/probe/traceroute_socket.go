package probe

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// answer is what came back for one probe.
type answer struct {
	id    uint16
	from  netip.Addr
	at    time.Time
	final bool // the destination itself answered
	// unreach: a router said the destination cannot be reached (not the
	// destination's own port unreachable).
	unreach bool
}

// wire sends a traceroute's probes and hears their answers: one per
// protocol and socket mode. Its sockets are opened by the goroutine that
// builds it, so a caller in a network namespace traces from there.
type wire struct {
	src, dst     netip.Addr
	proto        string
	sport, dport uint16
	icmpID       uint16
	seqBase      uint32
	send         net.PacketConn // the socket probes leave through
	listen       []net.PacketConn
	closers      []interface{ Close() error }
	answers      chan answer
	done         chan struct{}
}

// errNoRawSocket is the kernel refusing a raw socket.
var errNoRawSocket = errors.New("no raw socket")

// openWire opens what a trace needs. privileged asks for raw sockets;
// without them only icmp can be traced, over an ICMP datagram socket.
func openWire(proto string, dst netip.Addr, dport uint16, privileged bool) (*wire, error) {
	w := &wire{dst: dst, proto: proto, dport: dport, seqBase: rand.Uint32(),
		answers: make(chan answer, 256), done: make(chan struct{})}
	src, err := sourceFor(dst, dport)
	if err != nil {
		return nil, err
	}
	w.src = src
	if !privileged {
		return w, w.openPing()
	}
	if err := w.openRaw(); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// sourceFor asks the kernel which address it would send to dst from: the
// UDP and TCP checksums cover it.
func sourceFor(dst netip.Addr, port uint16) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, max(port, 9))))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cannot find a route to %s: %w", dst, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// openRaw opens a raw ICMP socket to hear every ICMP answer and, for udp
// and tcp, a raw socket of that protocol to send through (and, for tcp, to
// hear SYN-ACKs and RSTs), with a bound ordinary socket reserving the
// source port so no local connection shares it.
func (w *wire) openRaw() error {
	icmpc, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return rawRefused(err)
	}
	w.listen, w.send = append(w.listen, icmpc), icmpc
	w.closers = append(w.closers, icmpc)
	w.icmpID = uint16(rand.IntN(0xfffe) + 1)
	if w.proto == "icmp" {
		return nil
	}
	var reserve interface{ Close() error }
	switch w.proto {
	case "udp":
		var c *net.UDPConn
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: w.src.AsSlice()})
		if err == nil {
			reserve, w.sport = c, uint16(c.LocalAddr().(*net.UDPAddr).Port)
		}
	case "tcp":
		var l *net.TCPListener
		l, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: w.src.AsSlice()})
		if err == nil {
			reserve, w.sport = l, uint16(l.Addr().(*net.TCPAddr).Port)
		}
	}
	if err != nil {
		return fmt.Errorf("cannot reserve a source port: %w", err)
	}
	w.closers = append(w.closers, reserve)
	raw, err := net.ListenPacket("ip4:"+w.proto, w.src.String())
	if err != nil {
		return rawRefused(err)
	}
	w.closers, w.send = append(w.closers, raw), raw
	if w.proto == "tcp" {
		w.listen = append(w.listen, raw)
	} else {
		raw.(*net.IPConn).SetReadBuffer(1) // only sends: drop the copies of incoming UDP
	}
	return nil
}

func rawRefused(err error) error {
	if socketRefused(err) {
		return fmt.Errorf("%w: %w", errNoRawSocket, err)
	}
	return err
}

// openPing opens an unprivileged ICMP datagram socket
// (net.ipv4.ping_group_range): the kernel sets the echo id to the
// socket's port, and reports time exceeded and unreachable only on the
// socket's error queue (IP_RECVERR).
func (w *wire) openPing() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return fmt.Errorf("cannot open an ICMP datagram socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1); err != nil {
		unix.Close(fd)
		return fmt.Errorf("cannot ask for ICMP errors (IP_RECVERR): %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("cannot bind an ICMP datagram socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ping")
	c, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("cannot use an ICMP datagram socket: %w", err)
	}
	w.send, w.closers = c, append(w.closers, c)
	w.icmpID = uint16(c.LocalAddr().(*net.UDPAddr).Port)
	return nil
}

// setTTL sets the TTL of what the send socket sends next.
func (w *wire) setTTL(ttl int) error {
	sc, ok := w.send.(syscall.Conn)
	if !ok {
		return fmt.Errorf("cannot set the TTL of a %T", w.send)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
	}); err != nil {
		return err
	}
	return serr
}

// sendProbe sends probe id with the given TTL.
func (w *wire) sendProbe(ttl int, id uint16) error {
	if err := w.setTTL(ttl); err != nil {
		return fmt.Errorf("cannot set TTL %d: %w", ttl, err)
	}
	var b []byte
	switch w.proto {
	case "icmp":
		b = icmpEcho(w.icmpID, id)
	case "udp":
		b = udpProbe(w.src, w.dst, w.sport, w.dport, id)
	case "tcp":
		b = tcpSYN(w.src, w.dst, w.sport, w.dport, w.seqBase+uint32(id))
	}
	var to net.Addr = &net.IPAddr{IP: w.dst.AsSlice()}
	if _, ok := w.send.(*net.UDPConn); ok { // the ICMP datagram socket
		to = &net.UDPAddr{IP: w.dst.AsSlice()}
	}
	_, err := w.send.WriteTo(b, to)
	return err
}

// start runs the readers; close stops them.
func (w *wire) start() {
	for _, c := range w.listen {
		go w.readRaw(c)
	}
	if len(w.listen) == 0 {
		go w.readPing()
	}
}

func (w *wire) close() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	for _, c := range w.closers {
		c.Close()
	}
}

func (w *wire) deliver(a answer) {
	select {
	case w.answers <- a:
	case <-w.done:
	}
}

// readRaw reads a raw socket (IPv4 header stripped by net) until closed.
func (w *wire) readRaw(c net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		at := time.Now()
		addr, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		addr = addr.Unmap()
		var a answer
		var ok bool
		if c == w.send && w.proto == "tcp" {
			a, ok = w.matchTCP(buf[:n], addr)
		} else if m, parsed := parseICMP(buf[:n]); parsed {
			a, ok = w.matchICMP(m, addr)
		}
		if ok {
			a.at = at
			w.deliver(a)
		}
	}
}

// matchICMP says which probe an ICMP message answers, if one of ours.
func (w *wire) matchICMP(m icmpMessage, from netip.Addr) (answer, bool) {
	a := answer{from: from, final: from == w.dst}
	if m.typ == icmpEchoReply {
		a.id = m.seq
		return a, w.proto == "icmp" && m.id == w.icmpID && from == w.dst
	}
	q := m.quoted
	a.unreach = m.typ == icmpUnreachable && !a.final
	if q.dst != w.dst {
		return a, false
	}
	port := func(at int) uint16 { return uint16(q.l4[at])<<8 | uint16(q.l4[at+1]) }
	switch {
	case w.proto == "icmp" && q.proto == protoICMP && q.l4[0] == icmpEchoRequest && port(4) == w.icmpID:
		a.id = port(6)
	case w.proto == "udp" && q.proto == protoUDP && port(0) == w.sport && port(2) == w.dport:
		a.id = port(6)
	case w.proto == "tcp" && q.proto == protoTCP && port(0) == w.sport && port(2) == w.dport:
		seq := uint32(port(4))<<16 | uint32(port(6))
		a.id = uint16(seq - w.seqBase)
	default:
		return a, false
	}
	return a, true
}

// matchTCP says which SYN probe a segment from the destination answers:
// a SYN-ACK (port open) or a RST (closed) both end the trace.
func (w *wire) matchTCP(b []byte, from netip.Addr) (answer, bool) {
	r, ok := parseTCP(b)
	if !ok || from != w.dst || r.sport != w.dport || r.dport != w.sport || r.flags&(tcpFlagRST|tcpFlagACK) == 0 {
		return answer{}, false
	}
	return answer{id: uint16(r.ack - 1 - w.seqBase), from: from, final: true}, true
}

// readPing reads the ICMP datagram socket: echo replies as data, time
// exceeded and unreachable from its error queue.
func (w *wire) readPing() {
	rc, err := w.send.(syscall.Conn).SyscallConn()
	if err != nil {
		return
	}
	buf, oob := make([]byte, 1500), make([]byte, 512)
	for {
		var got []answer
		err := rc.Read(func(fd uintptr) bool {
			got = w.drainPing(int(fd), buf, oob)
			return len(got) > 0
		})
		if err != nil {
			return
		}
		for _, a := range got {
			w.deliver(a)
		}
	}
}

// drainPing reads what is ready on the ping socket without blocking.
func (w *wire) drainPing(fd int, buf, oob []byte) []answer {
	var out []answer
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			break
		}
		if a, ok := w.matchPingError(buf[:n], oob[:oobn]); ok {
			out = append(out, a)
		}
	}
	// A pending ICMP error may surface once as a read error (its details
	// are in the queue read above); a few tries get past it.
	for range 64 {
		n, _, _, from, err := unix.Recvmsg(fd, buf, nil, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return out
		} else if err != nil {
			continue
		}
		sa, ok := from.(*unix.SockaddrInet4)
		if m, parsed := parseICMP(buf[:n]); ok && parsed && m.typ == icmpEchoReply && netip.AddrFrom4(sa.Addr) == w.dst {
			out = append(out, answer{id: m.seq, from: w.dst, at: time.Now(), final: true})
		}
	}
	return out
}

// matchPingError reads one error-queue message: the quoted echo header in
// data and, in the control message, the ICMP type and who sent it.
func (w *wire) matchPingError(data, oob []byte) (answer, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(data) < 8 || data[0] != icmpEchoRequest {
		return answer{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_RECVERR {
			continue
		}
		const eeSize = int(unsafe.Sizeof(unix.SockExtendedErr{}))
		if len(m.Data) < eeSize+8 {
			continue
		}
		ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
		if ee.Origin != unix.SO_EE_ORIGIN_ICMP {
			continue
		}
		from := netip.AddrFrom4([4]byte(m.Data[eeSize+4 : eeSize+8])) // sockaddr_in: family, port, address
		a := answer{id: uint16(data[6])<<8 | uint16(data[7]), from: from, at: time.Now(), final: from == w.dst}
		a.unreach = ee.Type == icmpUnreachable && !a.final
		return a, true
	}
	return answer{}, false
}
