#!/usr/bin/env bash
# Installs the Debian packages Meridian's tests and `make run` need, only when
# missing: `apt-get update` once, then `apt-get install -y`. Idempotent.
#   deploy/deps.sh clickhouse chromium wrk zookeeper pdns haproxy
# zookeeper is Debian's ZooKeeper 3.8 (Java; it brings a JRE, default-jre),
# which the replicated test cluster (local.sh start-replicated) runs.
# pdns is PowerDNS with the geoip backend (LUA country()) and gsqlite3, the
# backend whose zones the API can change (the steering push tests); its probe
# is the gsqlite3 schema they load with the sqlite3 client.
# cloud-init checks deploy/cloud-init's user-data (cloud-init schema); systemd
# brings systemd-analyze and systemctl for deploy/'s unit and install.sh tests
# (a container image may lack it; a Debian VM has it).
# iproute2 brings ip, with which the traceroute tests build their paths of
# network namespaces and veth pairs (agent/probe/netnstest).
set -euo pipefail

declare -A pkgs=(
	[clickhouse]="clickhouse-server clickhouse-client"
	[chromium]="chromium"
	[wrk]="wrk"
	[zookeeper]="zookeeper"
	[pdns]="pdns-server pdns-backend-bind pdns-backend-geoip pdns-backend-sqlite3 sqlite3"
	[haproxy]="haproxy"
	[cloud-init]="cloud-init"
	[systemd]="systemd"
	[iproute2]="iproute2"
)
# A command, or a file (a path) whose presence means the package is there.
declare -A probe=(
	[clickhouse]="clickhouse-server"
	[chromium]="chromium"
	[wrk]="wrk"
	[zookeeper]="/usr/share/java/zookeeper.jar"
	[pdns]="/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"
	[haproxy]="haproxy"
	[cloud-init]="cloud-init"
	[systemd]="systemd-analyze"
	[iproute2]="ip"
)

present() {
	if [[ "$1" == /* ]]; then [[ -e "$1" ]]; else command -v "$1" >/dev/null 2>&1; fi
}

missing=()
for want in "$@"; do
	[[ -n "${pkgs[$want]:-}" ]] || { echo "deps.sh: unknown dependency $want (know: ${!pkgs[*]})" >&2; exit 2; }
	present "${probe[$want]}" || missing+=(${pkgs[$want]})
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
for want in "$@"; do
	present "${probe[$want]}" || { echo "deps.sh: ${pkgs[$want]} installed, but ${probe[$want]} is still missing" >&2; exit 1; }
done
# Installed here for `cloud-init schema` only: keep it from configuring this
# machine at its next boot (a cloud VM that already had it is left alone).
[[ " ${missing[*]} " != *" cloud-init "* ]] || $sudo touch /etc/cloud/cloud-init.disabled
[[ " $* " != *" zookeeper "* ]] || command -v java >/dev/null ||
	{ echo "deps.sh: zookeeper installed, but no java: install a JRE (default-jre-headless)" >&2; exit 1; }
