#!/usr/bin/env bash
# What `make test` runs: dependencies, the beacon script's checks, a
# throwaway ClickHouse 18.16 on free loopback ports (and ClickHouse 26.x
# in-process through chDB, a second engine for every statement) plus a two-shard local cluster
# (two more servers) and a replicated one (ZooKeeper and four servers: two
# shards of two replicas), every Go test against them (race detector on),
# short fuzz runs, then the servers are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/deps.sh clickhouse chromium zookeeper pdns haproxy cloud-init systemd iproute2
echo "== ClickHouse 26.x as a library (chDB) for the statements' second engine"
CHDB_LIB_PATH=$(deploy/chdb/install.sh)
export CHDB_LIB_PATH

echo "== rum-js: unit tests, rebuild check, size budget"
(cd rum-js && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run check)

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './rum-js/node_modules/*'))
[[ -z "$unformatted" ]] || { echo "gofmt needed on: $unformatted" >&2; exit 1; }
go vet ./...

chdir=$(mktemp -d "${TMPDIR:-/tmp}/meridian-test-ch.XXXXXX")
cleanup() {
	deploy/clickhouse/local.sh stop-replicated "$chdir/replicated" || true
	deploy/clickhouse/local.sh stop-cluster "$chdir/cluster" || true
	deploy/clickhouse/local.sh stop "$chdir/single" || true
	rm -rf "$chdir"
}
trap cleanup EXIT
addr=$(deploy/clickhouse/local.sh start "$chdir/single")
echo "== ClickHouse $(clickhouse-client --port "${addr##*:}" -q 'SELECT version()') on $addr"
cluster=$(deploy/clickhouse/local.sh start-cluster "$chdir/cluster")
echo "== ClickHouse cluster meridian_test (two shards) on $cluster"
replicated=$(deploy/clickhouse/local.sh start-replicated "$chdir/replicated")
echo "== ClickHouse cluster meridian_test_replicated (two shards of two replicas, ZooKeeper $(cat "$chdir/replicated/zk/addr")) on $replicated"

echo "== go test"
MERIDIAN_TEST_CLICKHOUSE="$addr" MERIDIAN_TEST_CLICKHOUSE_HTTP="$(cat "$chdir/single/http_addr")" \
	MERIDIAN_TEST_CLICKHOUSE_CLUSTER="$cluster" \
	MERIDIAN_TEST_CLICKHOUSE_REPLICATED="$replicated" \
	go test -race -timeout "$([[ -n ${MERIDIAN_SOAK:-} ]] && echo 60m || echo 15m)" -count=1 ./...

echo "== replay every statement clickhouse-go sent to 18.16 on ClickHouse 26.x"
go run ./collector/store/chtest/replay "$(cat "$chdir/single/http_addr")"

echo "== fuzz the decoders briefly (corpora in testdata/fuzz)"
# Budgets in executions, not seconds: with a time budget, Go 1.26's fuzz
# coordinator can fail a busy machine's run with "context deadline exceeded"
# (golang/go#75804, fixed in Go 1.27). About 10 s each on an idle 2-core
# machine, longer on a busy one.
go test -run '^$' -fuzz '^FuzzDecodeNDJSON$' -fuzztime 300000x ./internal/result/
go test -run '^$' -fuzz '^FuzzBeacon$' -fuzztime 80000x ./collector/server/
go test -run '^$' -fuzz '^FuzzBeaconFastPath$' -fuzztime 80000x ./collector/store/
