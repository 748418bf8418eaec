#!/usr/bin/env bash
# What `make test` runs: dependencies, the beacon script's checks, a
# throwaway ClickHouse on free loopback ports, every Go test against it
# (race detector on), short fuzz runs, then the server is stopped.
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
trap 'deploy/clickhouse/local.sh stop "$chdir"; rm -rf "$chdir"' EXIT
addr=$(deploy/clickhouse/local.sh start "$chdir")
echo "== ClickHouse $(clickhouse-client --port "${addr##*:}" -q 'SELECT version()') on $addr"

echo "== go test"
MERIDIAN_TEST_CLICKHOUSE="$addr" go test -race -timeout 15m -count=1 ./...

echo "== fuzz the decoders briefly (corpora in testdata/fuzz)"
go test -run '^$' -fuzz '^FuzzDecodeNDJSON$' -fuzztime 10s ./internal/result/
go test -run '^$' -fuzz '^FuzzBeacon$' -fuzztime 10s ./collector/server/
