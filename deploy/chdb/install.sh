#!/usr/bin/env bash
# Installs ClickHouse 26.x as a library (chDB's libchdb.so, from the npm
# package @chdb/lib-linux-x64-gnu pinned in package-lock.json, ~540 MB) under
# DIR (default var/chdb, git-ignored) when it is missing, and prints the path
# of libchdb.so for CHDB_LIB_PATH. Idempotent: a second run only prints.
#   deploy/chdb/install.sh [DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/../../var/chdb}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
lib="$dir/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"
[[ "$(uname -sm)" == "Linux x86_64" ]] || {
	echo "install.sh: chDB's npm library is built for Linux x86_64 only, this is $(uname -sm)" >&2; exit 1; }
if ! [[ -f "$lib" ]] || ! cmp -s "$here/package-lock.json" "$dir/package-lock.json"; then
	echo "install.sh: installing ClickHouse 26.x (chDB, ~540 MB) under $dir" >&2
	cp "$here/package.json" "$here/package-lock.json" "$dir/"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
[[ -f "$lib" ]] || { echo "install.sh: npm ci ran but $lib is missing" >&2; exit 1; }
echo "$lib"
