// Package chtest gives tests a fresh, migrated database on the real
// ClickHouse that `make test` starts, on its two-shard test cluster, or on
// its replicated test cluster (two shards of two replicas, with ZooKeeper).
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

// EnvReplicated names the variable holding the replicated test cluster's
// nodes, "HOST:PORT,HOST:PORT,HOST:PORT,HOST:PORT" as `local.sh
// start-replicated` prints them: shard 1's two replicas, then shard 2's.
const EnvReplicated = "MERIDIAN_TEST_CLICKHOUSE_REPLICATED"

// ReplicatedCluster is the name of the replicated test cluster in its nodes'
// <remote_servers>.
const ReplicatedCluster = "meridian_test_replicated"

// ReplicatedAddrs returns the replicated test cluster's node addresses, shard
// by shard and replica by replica, failing the test when there are none.
func ReplicatedAddrs(tb testing.TB) []string {
	tb.Helper()
	v := os.Getenv(EnvReplicated)
	if v == "" {
		tb.Fatalf("%s is not set: this test needs the local replicated ClickHouse cluster (two shards of two replicas, with ZooKeeper). "+
			"Run `make test`, or install ZooKeeper with `deploy/deps.sh zookeeper`, start the cluster with "+
			"`deploy/clickhouse/local.sh start-replicated var/chreplicated` and set %s to the four HOST:PORT it prints", EnvReplicated, EnvReplicated)
	}
	addrs := strings.Split(v, ",")
	if len(addrs) != 4 {
		tb.Fatalf("%s=%q: want four HOST:PORT, comma-separated (shard 1 replica 1, shard 1 replica 2, shard 2 replica 1, shard 2 replica 2)", EnvReplicated, v)
	}
	return addrs
}

// NewReplicated creates a database with a random name on the replicated test
// cluster and migrates it with --cluster and Replicated* engines; it returns
// options for the first node and one connection per node, in
// ReplicatedAddrs' order. The database is dropped on every node with tb.
func NewReplicated(tb testing.TB) (store.Options, []driver.Conn) {
	tb.Helper()
	addrs := ReplicatedAddrs(tb)
	o := store.Options{Addr: addrs[0], Database: "test_" + randHex(6), Cluster: ReplicatedCluster, Replicated: true}
	return o, newOnCluster(tb, o, addrs)
}

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
	return o, newOnCluster(tb, o, addrs)
}

// newOnCluster migrates o (o.Addr is one of addrs) on the cluster whose
// nodes are addrs and connects to each node.
func newOnCluster(tb testing.TB, o store.Options, addrs []string) []driver.Conn {
	tb.Helper()
	ctx := context.Background()
	var conns []driver.Conn
	tb.Cleanup(func() {
		for _, c := range conns {
			if err := store.DropDatabase(context.Background(), c, o.Database); err != nil {
				tb.Logf("cannot drop test database %s: %v", o.Database, err)
			}
			c.Close()
		}
	})
	if _, err := store.Migrate(ctx, o, nil); err != nil {
		tb.Fatalf("cannot migrate test database on cluster %s: %v", o.Cluster, err)
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
	return conns
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
		if err := store.DropDatabase(context.Background(), conn, o.Database); err != nil {
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
