// Package chtest gives tests a fresh, migrated database on the real
// ClickHouse that `make test` starts, or on its two-shard test cluster.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
)

// EnvAddr names the variable holding the test server's HOST:PORT.
const EnvAddr = "MERIDIAN_TEST_CLICKHOUSE"

// EnvCluster names the variable holding the test cluster's nodes,
// "HOST:PORT,HOST:PORT" as `local.sh start-cluster` prints them.
const EnvCluster = "MERIDIAN_TEST_CLICKHOUSE_CLUSTER"

// Cluster is the name of the test cluster in the nodes' <remote_servers>.
const Cluster = "meridian_test"

// ClusterAddrs returns the test cluster's node addresses, failing the test
// when there are none.
func ClusterAddrs(tb testing.TB) []string {
	tb.Helper()
	v := os.Getenv(EnvCluster)
	if v == "" {
		tb.Fatalf("%s is not set: this test needs the local two-shard ClickHouse cluster. Run `make test`, or start it with "+
			"`deploy/clickhouse/local.sh start-cluster var/chcluster` and set %s to the HOST:PORT,HOST:PORT it prints", EnvCluster, EnvCluster)
	}
	addrs := strings.Split(v, ",")
	if len(addrs) < 2 {
		tb.Fatalf("%s=%q: want at least two HOST:PORT, comma-separated", EnvCluster, v)
	}
	return addrs
}

// NewCluster creates a database with a random name on the test cluster and
// migrates it with --cluster; it returns options for the first node and one
// connection per node. The database is dropped on every node with tb.
func NewCluster(tb testing.TB) (store.Options, []driver.Conn) {
	tb.Helper()
	addrs := ClusterAddrs(tb)
	o := store.Options{Addr: addrs[0], Database: "test_" + randHex(6), Cluster: Cluster}
	ctx := context.Background()
	var conns []driver.Conn
	tb.Cleanup(func() {
		for _, c := range conns {
			if err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+o.Database); err != nil {
				tb.Logf("cannot drop test database %s: %v", o.Database, err)
			}
			c.Close()
		}
	})
	if _, err := store.Migrate(ctx, o, nil); err != nil {
		tb.Fatalf("cannot migrate test database on cluster %s: %v", Cluster, err)
	}
	for _, a := range addrs {
		no := o
		no.Addr = a
		c, err := store.Open(ctx, no)
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
	return o, conns
}

// Addr returns the test ClickHouse address, failing the test when there is
// none: a storage test that cannot reach storage must not pass.
func Addr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		tb.Fatalf("%s is not set: this test needs a real ClickHouse. Run `make test`, or start one with "+
			"`deploy/clickhouse/local.sh start var/ch` and set %s to the address it prints", EnvAddr, EnvAddr)
	}
	return addr
}

// New creates a database with a random name, applies every migration and
// returns its options and a connection; both are cleaned up with tb.
func New(tb testing.TB) (store.Options, driver.Conn) {
	tb.Helper()
	o := store.Options{Addr: Addr(tb), Database: "test_" + randHex(6)}
	ctx := context.Background()
	if _, err := store.Migrate(ctx, o, nil); err != nil {
		tb.Fatalf("cannot migrate test database: %v", err)
	}
	conn, err := store.Open(ctx, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+o.Database); err != nil {
			tb.Logf("cannot drop test database %s: %v", o.Database, err)
		}
		conn.Close()
	})
	return o, conn
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
