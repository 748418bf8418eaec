#!/usr/bin/env bash
# What `make test` runs: dependencies, the beacon script's checks, a
# throwaway ClickHouse on free loopback ports plus a two-shard local cluster
# (two more servers), every Go test against them (race detector on), short
# fuzz runs, then the servers are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/deps.sh clickhouse chromium

echo "== rum-js: unit tests, rebuild check, size budget"
(cd rum-js && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run check)

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './rum-js/node_modules/*'))
[[ -z "$unformatted" ]] || { echo "gofmt needed on: $unformatted" >&2; exit 1; }
go vet ./...

chdir=$(mktemp -d "${TMPDIR:-/tmp}/meridian-test-ch.XXXXXX")
cleanup() {
	deploy/clickhouse/local.sh stop-cluster "$chdir/cluster" || true
	deploy/clickhouse/local.sh stop "$chdir/single" || true
	rm -rf "$chdir"
}
trap cleanup EXIT
addr=$(deploy/clickhouse/local.sh start "$chdir/single")
echo "== ClickHouse $(clickhouse-client --port "${addr##*:}" -q 'SELECT version()') on $addr"
cluster=$(deploy/clickhouse/local.sh start-cluster "$chdir/cluster")
echo "== ClickHouse cluster meridian_test (two shards) on $cluster"

echo "== go test"
MERIDIAN_TEST_CLICKHOUSE="$addr" MERIDIAN_TEST_CLICKHOUSE_CLUSTER="$cluster" \
	go test -race -timeout 15m -count=1 ./...

echo "== fuzz the decoders briefly (corpora in testdata/fuzz)"
go test -run '^$' -fuzz '^FuzzDecodeNDJSON$' -fuzztime 10s ./internal/result/
go test -run '^$' -fuzz '^FuzzBeacon$' -fuzztime 10s ./collector/server/
