#!/usr/bin/env bash
# Starts and stops a throwaway ClickHouse server on free loopback ports, with
# all its state under one directory. Used by `make test` and `make run`.
#
#   local.sh start DIR   prints HOST:PORT (native protocol) once the server answers
#   local.sh stop DIR    stops it (and waits for it to exit)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"; dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$(( 20000 + RANDOM % 30000 ))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	echo "local.sh: cannot find a free port" >&2; exit 1
}

start() {
	command -v clickhouse-server >/dev/null || {
		echo "local.sh: clickhouse-server not installed; run: make deps" >&2; exit 1; }
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
		cat "$dir/addr"; return
	fi
	local tcp http
	tcp=$(free_port); http=$(free_port)
	while [[ "$http" == "$tcp" ]]; do http=$(free_port); done
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
	sed -e "s#@DIR@#$dir#g" -e "s#@TCP_PORT@#$tcp#g" -e "s#@HTTP_PORT@#$http#g" \
		"$here/local-config.xml" > "$dir/config.xml"
	cp "$here/local-users.xml" "$dir/users.xml"
	nohup clickhouse-server --config-file="$dir/config.xml" >"$dir/server.log" 2>&1 &
	echo $! > "$dir/pid"
	echo "127.0.0.1:$tcp" > "$dir/addr"
	for _ in $(seq 1 300); do
		if clickhouse-client --host 127.0.0.1 --port "$tcp" --query 'SELECT 1' >/dev/null 2>&1; then
			cat "$dir/addr"; return
		fi
		if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
			echo "local.sh: clickhouse-server exited; last lines of $dir/server.log:" >&2
			tail -20 "$dir/server.log" >&2; exit 1
		fi
		sleep 0.1
	done
	echo "local.sh: clickhouse-server did not answer within 30s; see $dir/server.log" >&2
	exit 1
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
	*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
