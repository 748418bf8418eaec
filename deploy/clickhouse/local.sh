#!/usr/bin/env bash
# Starts and stops a throwaway ClickHouse server on free loopback ports, with
# all its state under one directory. Used by `make test` and `make run`.
#
#   local.sh start DIR           prints HOST:PORT (native protocol) once the server answers;
#                                DIR/http_addr holds the HTTP interface's HOST:PORT
#   local.sh stop DIR            stops it (and waits for it to exit)
#   local.sh start-cluster DIR   starts two servers, DIR/shard1 and DIR/shard2, forming
#                                cluster meridian_test (two shards, one replica each, no
#                                ZooKeeper; see local-cluster.xml); prints HOST:PORT,HOST:PORT
#   local.sh stop-cluster DIR    stops both
#   local.sh start-replicated DIR
#                                starts a throwaway ZooKeeper (DIR/zk) and four servers,
#                                DIR/s1r1 DIR/s1r2 DIR/s2r1 DIR/s2r2, forming cluster
#                                meridian_test_replicated (two shards of two replicas, for
#                                Replicated* tables; see local-replicated.xml); prints the
#                                four HOST:PORT comma-separated in that order (shard 1
#                                replicas 1 and 2, then shard 2's) once each server answers
#                                and reaches ZooKeeper. Needs `deploy/deps.sh zookeeper`.
#   local.sh stop-replicated DIR stops the four servers, then ZooKeeper
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"; dir="${2:-}"
usage="usage: $0 start|stop|start-cluster|stop-cluster|start-replicated|stop-replicated DIR"
[[ -n "$cmd" && -n "$dir" ]] || { echo "$usage" >&2; exit 2; }

free_port() {
	# Below the kernel's ephemeral range, so that no outgoing connection
	# takes the port between this check and the server's bind.
	local p lo=32768
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	(( lo > 11000 )) || { echo "local.sh: the ephemeral port range starts at $lo: no room below it" >&2; exit 1; }
	for _ in $(seq 1 200); do
		p=$(( 10000 + RANDOM % (lo - 10000) ))
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
	echo "127.0.0.1:$http" > "$d/http_addr"
}

# wait_ready DIR [QUERY WHAT] waits until the server started in DIR answers
# QUERY (default SELECT 1; WHAT says what it checks in the error).
wait_ready() {
	local d="$1" query="${2:-SELECT 1}" what="${3:-answer}" tcp
	tcp="$(cut -d: -f2 "$d/addr")"
	for _ in $(seq 1 300); do
		if clickhouse-client --host 127.0.0.1 --port "$tcp" --query "$query" >/dev/null 2>&1; then
			return
		fi
		if ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
			echo "local.sh: clickhouse-server exited; last lines of $d/server.log:" >&2
			tail -20 "$d/server.log" >&2; exit 1
		fi
		sleep 0.1
	done
	echo "local.sh: clickhouse-server in $d did not $what within 30s; see $d/server.log" >&2
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
	kill "$(cat "$dir/pid")" 2>/dev/null || true
	wait_gone
}

# wait_gone waits up to 20 s for the process in $dir/pid to exit (it was asked
# to), then kills it.
wait_gone() {
	[[ -f "$dir/pid" ]] || return 0
	local pid; pid="$(cat "$dir/pid")"
	for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/pid"
}

# The replicated cluster: its servers' directories, in the order start-replicated
# prints their addresses.
replicas=(s1r1 s1r2 s2r1 s2r2)

# Debian's zookeeper package: the server jar (its manifest names the jars it
# needs) and slf4j's simple logger, so that warnings reach DIR/zk/zk.log.
zk_classpath=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar

require_zookeeper() {
	[[ -f /usr/share/java/zookeeper.jar ]] && command -v java >/dev/null || {
		echo "local.sh: ZooKeeper (Debian package zookeeper) not installed; run: deploy/deps.sh zookeeper" >&2; exit 1; }
}

# zk_ruok PORT prints what ZooKeeper on PORT answers to "ruok" (imok when up).
zk_ruok() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf ruok >&3 && cat <&3' _ "$1" 2>/dev/null || true
}

# zk_launch DIR PORT starts a standalone ZooKeeper with its state in DIR and
# waits until it answers. Small heap and the serial collector: it holds a few
# hundred znodes for the tests.
zk_launch() {
	local d="$1" port="$2"
	mkdir -p "$d/data"
	sed -e "s#@DIR@#$d#g" -e "s#@PORT@#$port#g" "$here/zoo.cfg" > "$d/zoo.cfg"
	nohup java -Xms16m -Xmx256m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
		-cp "$zk_classpath" org.apache.zookeeper.server.ZooKeeperServerMain "$d/zoo.cfg" >"$d/zk.log" 2>&1 &
	echo $! > "$d/pid"
	echo "127.0.0.1:$port" > "$d/addr"
	for _ in $(seq 1 300); do
		[[ "$(zk_ruok "$port")" == imok ]] && return
		if ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
			echo "local.sh: ZooKeeper exited; last lines of $d/zk.log:" >&2
			tail -20 "$d/zk.log" >&2; exit 1
		fi
		sleep 0.1
	done
	echo "local.sh: ZooKeeper did not answer within 30s; see $d/zk.log" >&2
	exit 1
}

replicated_addrs() {
	local r out=""
	for r in "${replicas[@]}"; do out+="${out:+,}$(cat "$dir/$r/addr")"; done
	echo "$out"
}

start_replicated() {
	require_server
	require_zookeeper
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	local r all=1
	for r in zk "${replicas[@]}"; do running "$dir/$r" || all=0; done
	if (( all )); then replicated_addrs; return; fi
	stop_replicated
	trap stop_replicated EXIT # a server that fails to start takes the others down
	# Per server a native, an HTTP and an interserver port, and ZooKeeper's.
	local -a ports
	mapfile -t ports < <(free_ports 13)
	zk_launch "$dir/zk" "${ports[12]}"
	local i
	for i in 0 1 2 3; do
		r="${replicas[$i]}"
		mkdir -p "$dir/$r/config.d"
		sed -e "s#@S1R1@#${ports[0]}#g" -e "s#@S1R2@#${ports[3]}#g" \
			-e "s#@S2R1@#${ports[6]}#g" -e "s#@S2R2@#${ports[9]}#g" \
			-e "s#@ZK_PORT@#${ports[12]}#g" -e "s#@INTERSERVER_PORT@#${ports[i*3+2]}#g" \
			-e "s#@SHARD@#0${r:1:1}#g" -e "s#@REPLICA@#$r#g" \
			"$here/local-replicated.xml" > "$dir/$r/config.d/replicated.xml"
		launch "$dir/$r" "${ports[i*3]}" "${ports[i*3+1]}"
	done
	for r in "${replicas[@]}"; do wait_ready "$dir/$r"; done
	for r in "${replicas[@]}"; do
		wait_ready "$dir/$r" "SELECT count() FROM system.zookeeper WHERE path = '/'" "read ZooKeeper"
	done
	trap - EXIT
	replicated_addrs
}

# stop_replicated asks every server to stop at once, waits for them, then
# stops ZooKeeper (servers shut down faster while it still answers).
stop_replicated() {
	local d="$dir" r
	for r in "${replicas[@]}"; do
		[[ -f "$d/$r/pid" ]] && kill "$(cat "$d/$r/pid")" 2>/dev/null || true
	done
	for r in "${replicas[@]}"; do dir="$d/$r"; wait_gone; done
	dir="$d/zk"; stop
	dir="$d"
}

case "$cmd" in
	start) start ;;
	stop) stop ;;
	start-cluster) start_cluster ;;
	stop-cluster) stop_cluster ;;
	start-replicated) start_replicated ;;
	stop-replicated) stop_replicated ;;
	*) echo "$usage" >&2; exit 2 ;;
esac
