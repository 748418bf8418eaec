#!/usr/bin/env bash
# Installs the Debian packages Meridian's tests and `make run` need, only when
# missing: `apt-get update` once, then `apt-get install -y`. Idempotent.
#   deploy/deps.sh clickhouse chromium wrk
set -euo pipefail

declare -A pkgs=(
	[clickhouse]="clickhouse-server clickhouse-client"
	[chromium]="chromium"
	[wrk]="wrk"
)
declare -A probe=(
	[clickhouse]="clickhouse-server"
	[chromium]="chromium"
	[wrk]="wrk"
)

missing=()
for want in "$@"; do
	[[ -n "${pkgs[$want]:-}" ]] || { echo "deps.sh: unknown dependency $want (know: ${!pkgs[*]})" >&2; exit 2; }
	command -v "${probe[$want]}" >/dev/null 2>&1 || missing+=(${pkgs[$want]})
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
