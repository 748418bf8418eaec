#!/usr/bin/env bash
# Starts and stops a throwaway ClickHouse server on free loopback ports, with
# all its state under one directory. Used by `make test` and `make run`.
#
#   local.sh start DIR           prints HOST:PORT (native protocol) once the server answers
#   local.sh stop DIR            stops it (and waits for it to exit)
#   local.sh start-cluster DIR   starts two servers, DIR/shard1 and DIR/shard2, forming
#                                cluster meridian_test (two shards, one replica each, no
#                                ZooKeeper; see local-cluster.xml); prints HOST:PORT,HOST:PORT
#   local.sh stop-cluster DIR    stops both
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"; dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || { echo "usage: $0 start|stop|start-cluster|stop-cluster DIR" >&2; exit 2; }

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$(( 20000 + RANDOM % 30000 ))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	echo "local.sh: cannot find a free port" >&2; exit 1
}

# free_ports N prints N distinct free ports, one a line.
free_ports() {
	local -a got=()
	local p
	while (( ${#got[@]} < $1 )); do
		p=$(free_port)
		[[ " ${got[*]} " == *" $p "* ]] || got+=("$p")
	done
	printf '%s\n' "${got[@]}"
}

require_server() {
	command -v clickhouse-server >/dev/null || {
		echo "local.sh: clickhouse-server not installed; run: make deps" >&2; exit 1; }
}

running() { [[ -f "$1/pid" ]] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

# launch DIR TCP HTTP writes DIR's config and starts a server in the background.
launch() {
	local d="$1" tcp="$2" http="$3"
	mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas"
	sed -e "s#@DIR@#$d#g" -e "s#@TCP_PORT@#$tcp#g" -e "s#@HTTP_PORT@#$http#g" \
		"$here/local-config.xml" > "$d/config.xml"
	cp "$here/local-users.xml" "$d/users.xml"
	nohup clickhouse-server --config-file="$d/config.xml" >"$d/server.log" 2>&1 &
	echo $! > "$d/pid"
	echo "127.0.0.1:$tcp" > "$d/addr"
}

# wait_ready DIR waits until the server started in DIR answers.
wait_ready() {
	local d="$1" tcp
	tcp="$(cut -d: -f2 "$d/addr")"
	for _ in $(seq 1 300); do
		if clickhouse-client --host 127.0.0.1 --port "$tcp" --query 'SELECT 1' >/dev/null 2>&1; then
			return
		fi
		if ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
			echo "local.sh: clickhouse-server exited; last lines of $d/server.log:" >&2
			tail -20 "$d/server.log" >&2; exit 1
		fi
		sleep 0.1
	done
	echo "local.sh: clickhouse-server did not answer within 30s; see $d/server.log" >&2
	exit 1
}

start() {
	require_server
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if running "$dir"; then
		cat "$dir/addr"; return
	fi
	local -a ports
	mapfile -t ports < <(free_ports 2)
	launch "$dir" "${ports[0]}" "${ports[1]}"
	wait_ready "$dir"
	cat "$dir/addr"
}

start_cluster() {
	require_server
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if running "$dir/shard1" && running "$dir/shard2"; then
		echo "$(cat "$dir/shard1/addr"),$(cat "$dir/shard2/addr")"; return
	fi
	stop_cluster
	local -a ports
	mapfile -t ports < <(free_ports 4)
	local n
	for n in 1 2; do
		mkdir -p "$dir/shard$n/config.d"
		sed -e "s#@PORT1@#${ports[0]}#g" -e "s#@PORT2@#${ports[2]}#g" -e "s#@SHARD@#0$n#g" \
			"$here/local-cluster.xml" > "$dir/shard$n/config.d/cluster.xml"
	done
	launch "$dir/shard1" "${ports[0]}" "${ports[1]}"
	launch "$dir/shard2" "${ports[2]}" "${ports[3]}"
	wait_ready "$dir/shard1"
	wait_ready "$dir/shard2"
	echo "$(cat "$dir/shard1/addr"),$(cat "$dir/shard2/addr")"
}

stop_cluster() {
	local d="$dir"
	dir="$d/shard1"; stop
	dir="$d/shard2"; stop
	dir="$d"
}

stop() {
	[[ -f "$dir/pid" ]] || return 0
	local pid; pid="$(cat "$dir/pid")"
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/pid"
}

case "$cmd" in
	start) start ;;
	stop) stop ;;
	start-cluster) start_cluster ;;
	stop-cluster) stop_cluster ;;
	*) echo "usage: $0 start|stop|start-cluster|stop-cluster DIR" >&2; exit 2 ;;
esac
