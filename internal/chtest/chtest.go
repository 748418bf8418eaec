// Package chtest gives tests a fresh, migrated database on the real
// ClickHouse that `make test` starts.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
)

// EnvAddr names the variable holding the test server's HOST:PORT.
const EnvAddr = "MERIDIAN_TEST_CLICKHOUSE"

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
