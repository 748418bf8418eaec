package store_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// A column renamed away (here dropped: 18.16 cannot rename columns), then
// back: ClickHouse refuses every insert meanwhile (NO_SUCH_COLUMN_IN_TABLE),
// which is not about the rows: they wait, nothing is dead-lettered, and
// everything is stored once the table is fixed.
func TestTransientRefusalDeadLettersNothing(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: dir, DrainEvery: 50 * time.Millisecond, Logf: tlog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	spooled := metric(t, `meridian_store_spooled_total{what="results"}`)
	if err := conn.Exec(ctx, "ALTER TABLE results DROP COLUMN location"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := w.Write(ctx, tcpRows(20, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a refused insert", func() bool { return metric(t, `meridian_store_spooled_total{what="results"}`) > spooled })
	time.Sleep(300 * time.Millisecond) // several read-backs fail meanwhile
	if err := conn.Exec(ctx, "ALTER TABLE results ADD COLUMN location String"); err != nil {
		t.Fatal(err)
	}
	waitRows(t, conn, dir, 100)
	if dead := deadLetters(t, dir); len(dead) != 0 {
		t.Errorf("got %d dead letters after a missing column, want none: %+v", len(dead), dead[0])
	}
}

// ClickHouse unreachable (its port closed), then back: rows wait in the
// journal, nothing is dead-lettered, everything is stored.
func TestUnreachableClickHouseDeadLettersNothing(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	p := startProxy(t, o.Addr)
	po := o
	po.Addr = p.addr
	pconn, err := store.Open(ctx, po)
	if err != nil {
		t.Fatal(err)
	}
	defer pconn.Close()
	dir := t.TempDir()
	w, err := store.NewWriter(pconn, store.WriterOptions{MaxDelay: 10 * time.Millisecond, SpoolDir: dir, DrainEvery: 50 * time.Millisecond, Logf: tlog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	spooled := metric(t, `meridian_store_spooled_total{what="results"}`)
	p.stop()
	for i := range 5 {
		if err := w.Write(ctx, tcpRows(20, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a failed insert", func() bool { return metric(t, `meridian_store_spooled_total{what="results"}`) > spooled })
	time.Sleep(300 * time.Millisecond)
	p.start(t)
	waitRows(t, conn, dir, 100)
	if dead := deadLetters(t, dir); len(dead) != 0 {
		t.Errorf("got %d dead letters with ClickHouse away, want none", len(dead))
	}
}

// proxy forwards TCP to ClickHouse until stopped: stopping closes its port
// and every connection, as a ClickHouse gone away would.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{addr: "127.0.0.1:0", target: target}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
