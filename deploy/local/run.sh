#!/usr/bin/env bash
# `make run`: a whole Meridian on this machine, state under ./var/run.
# Starts ClickHouse, the collector (publishing steering weights), two demo
# targets (one slowed: two members of a steering pool) and an agent
# measuring them (plus any URLs given as arguments), waits for data, prints
# the latency table and the current weights, and stops everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
var="$root/var/run"
bin="$root/var/bin"
mkdir -p "$var" "$bin"

deploy/deps.sh clickhouse
echo "building meridian, meridian-agent and the demo target…"
go build -o "$bin" ./collector/cmd/meridian ./agent/cmd/meridian-agent ./e2e/demo

pids=()
cleanup() {
	echo; echo "stopping…"
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	deploy/clickhouse/local.sh stop "$var/clickhouse"
	echo "stopped. Data stays in $var (rm -rf var/ to start afresh)."
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() { # first free port from $1 upwards
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}

export MERIDIAN_CLICKHOUSE
MERIDIAN_CLICKHOUSE=$(deploy/clickhouse/local.sh start "$var/clickhouse")
export MERIDIAN_DATABASE=${MERIDIAN_DATABASE:-meridian}
"$bin/meridian" migrate

if [[ ! -s "$var/agent.token" ]] || ! "$bin/meridian" agents list | grep -q '^local-1 '; then
	"$bin/meridian" agents add local-1 --region local --country NL | tail -1 > "$var/agent.token"
fi

listen="127.0.0.1:$(free_port 8080)"
# A steering pool of two members, the demo target and a slowed copy of it,
# matched to the agent's checks by name.
cat > "$var/steering.yml" <<'YAML'
pools:
  - name: demo
    dns_name: demo.meridian.test.
    members:
      - {name: fast, addresses: [127.0.0.1], synthetic: demo}
      - {name: slow, addresses: [127.0.0.2], synthetic: demo-slow}
YAML
"$bin/meridian" steering policy set --file "$var/steering.yml" > /dev/null
"$bin/meridian" serve --listen "$listen" --spool-dir "$var/collector-spool" --steering --steering-every 15s > "$var/collector.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://$listen/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# The demo page carries the beacon script, registered for its own origin.
demo="127.0.0.1:$(free_port 8081)"
site="demo-${demo##*:}"
"$bin/meridian" sites list | grep -q "^$site " ||
	"$bin/meridian" sites add "$site" --origin "http://$demo" --collector-url "http://$listen" > /dev/null
snippet=$("$bin/meridian" sites snippet "$site" --collector-url "http://$listen")
"$bin/demo" --listen "$demo" --head "$snippet" > "$var/demo.log" 2>&1 &
pids+=($!)
slow="127.0.0.1:$(free_port $(( ${demo##*:} + 1 )))"
"$bin/demo" --listen "$slow" --delay 150ms > "$var/demo-slow.log" 2>&1 &
pids+=($!)

{
	echo "agent: {name: local-1, region: local}"
	echo "checks:"
	echo "  - {name: demo, kind: http, target: \"http://$demo/\", interval: 5s}"
	echo "  - {name: demo-slow, kind: http, target: \"http://$slow/\", interval: 5s}"
	if command -v chromium >/dev/null; then
		echo "  - {name: demo-page, kind: browser, target: \"http://$demo/\", interval: 30s}"
	fi
	i=0
	for url in "$@"; do
		i=$((i + 1))
		echo "  - {name: url-$i, kind: http, target: \"$url\", interval: 15s}"
	done
} > "$var/agent.yml"
MERIDIAN_TOKEN=$(cat "$var/agent.token") MERIDIAN_COLLECTOR="http://$listen" \
	"$bin/meridian-agent" run --config "$var/agent.yml" --data-dir "$var/agent" > "$var/agent.log" 2>&1 &
pids+=($!)

echo "waiting for the first results to reach ClickHouse…"
for _ in $(seq 1 120); do
	n=$("$bin/meridian" query latency --since 1h --format csv | tail -n +2 | wc -l)
	[[ "$n" -gt 0 ]] && break
	sleep 1
done
cat <<MSG

Meridian is running (Ctrl-C stops it):
  collector      http://$listen   (/healthz, /readyz, /metrics, /rum.v1.js)
  demo target    http://$demo/   (open it: your page view lands in rum_pageviews)
                 http://$slow/   (150 ms slower: the pool's other member)
  steering       pool demo (policy $var/steering.yml), recomputed every 15s:
                 $bin/meridian steering show | explain --pool demo --scope global
                 GET http://$listen/v1/steering with a token from
                 $bin/meridian tokens add NAME --role steering-reader
  ClickHouse     $MERIDIAN_CLICKHOUSE, database $MERIDIAN_DATABASE
                 clickhouse-client --port ${MERIDIAN_CLICKHOUSE##*:} -d $MERIDIAN_DATABASE
  logs           $var/{collector,agent,demo}.log
  query          MERIDIAN_CLICKHOUSE=$MERIDIAN_CLICKHOUSE $bin/meridian query list
                 … query latency-map --since 1h --svg map.svg   (world map + heatmap)
  pictures       $var/latency-map.svg, $var/latency-map-heatmap.svg (rewritten every 30 s)

MSG
while true; do
	date '+latency over the last hour, %H:%M:%S'
	"$bin/meridian" query latency --since 1h --by region,check
	echo
	echo "latency map (country × member; picture: $var/latency-map.svg, $var/latency-map-heatmap.svg):"
	"$bin/meridian" query latency-map --since 1h --by country,member --svg "$var/latency-map.svg" 2>/dev/null || true
	echo
	echo "steering weights (pool demo):"
	"$bin/meridian" steering show --pool demo 2>&1 || true
	echo
	sleep 30 & wait $! || true
done
