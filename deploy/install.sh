#!/usr/bin/env bash
# Installs Meridian on one machine: the binaries you give, a system user per
# program, /etc/meridian with example settings (never overwriting one that is
# there), the data directories, and the hardened systemd units from
# deploy/systemd/. Safe to run again: that is how you upgrade a binary.
#
#   sudo deploy/install.sh [--root DIR] [--no-systemctl] [--start] BINARY...
#
# BINARY is a meridian or meridian-agent executable (bin/meridian from
# `make build`, dist/meridian-agent-linux-arm64 from `make dist`, …); its
# name says which one it is.
#   --root DIR      install into the system image under DIR (users through
#                   useradd --root, units enabled through systemctl --root);
#                   nothing is started
#   --no-systemctl  do not call systemctl (no systemd as PID 1: containers,
#                   build chroots); start the programs some other way
#   --start         start (or restart) the services now; otherwise a service
#                   already running is restarted and others wait for you to
#                   fill in /etc/meridian and start them
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=""
use_systemctl=1
start=0
bins=()

die() { echo "install.sh: $2" >&2; exit "$1"; }
say() { echo "install.sh: $*" >&2; }

usage() { sed -n '2,20s/^# \{0,1\}//p' "$0"; }

parse_args() {
	while (($#)); do
		case $1 in
		--root) root=${2:?--root needs a directory}; shift 2 ;;
		--root=*) root=${1#--root=}; shift ;;
		--no-systemctl) use_systemctl=0; shift ;;
		--start) start=1; shift ;;
		-h | --help) usage; exit 0 ;;
		-*) die 2 "unknown option $1 (see --help)" ;;
		*) bins+=("$1"); shift ;;
		esac
	done
	((${#bins[@]})) || die 2 "no binary given: pass bin/meridian and/or bin/meridian-agent (make build)"
	[[ $(id -u) -eq 0 ]] || die 1 "run as root (sudo): it creates users and writes /etc and /usr/local/bin"
	if [[ -n $root ]]; then
		[[ -d $root ]] || die 2 "--root $root is not a directory"
		root=$(cd "$root" && pwd)
		[[ -f $root/etc/passwd ]] || die 2 "--root $root has no etc/passwd: point it at a system image"
	fi
}

# role_of prints agent or collector for a binary's file name.
role_of() {
	case $(basename "$1") in
	meridian-agent*) echo agent ;;
	meridian*) echo collector ;;
	*) die 2 "cannot tell what $1 is: its name must start with meridian-agent or meridian" ;;
	esac
}

# ensure_user creates a locked system user with its own group, once.
ensure_user() {
	local name=$1 home=$2
	if grep -q "^$name:" "$root/etc/passwd" || { [[ -z $root ]] && id -u "$name" >/dev/null 2>&1; }; then
		return
	fi
	useradd ${root:+--root "$root"} --system --user-group --no-create-home \
		--home-dir "$home" --shell /usr/sbin/nologin --comment "Meridian $name" "$name"
	say "created system user $name"
}

# owner prints uid:gid of a user of the target system: chown by name would
# look the name up on this machine, not under --root.
owner() {
	if [[ -z $root ]]; then
		echo "$(id -u "$1"):$(id -g "$1")"
	else
		awk -F: -v n="$1" '$1 == n { print $3 ":" $4 }' "$root/etc/passwd"
	fi
}

# install_binary replaces /usr/local/bin/NAME by renaming a full copy over it,
# so a running binary is never half-written.
install_binary() {
	local src=$1 name=$2 dst=$root/usr/local/bin/$2
	"$src" version >/dev/null 2>&1 || die 1 "$src does not run here ($src version failed): wrong architecture or not a $name binary?"
	install -d -m 0755 "$root/usr/local/bin"
	install -m 0755 "$src" "$dst.new"
	mv -f "$dst.new" "$dst"
	say "installed $dst"
}

# install_example copies an example settings file unless one is there: the
# file is the user's from then on.
install_example() {
	local src=$1 dst=$root/etc/meridian/$2 mode=$3
	install -d -m 0755 "$root/etc/meridian"
	if [[ -e $dst ]]; then
		say "kept $dst"
		return
	fi
	install -m "$mode" "$src" "$dst"
	say "wrote $dst: edit it"
}

install_role() {
	local role=$1 src=$2 name user state
	case $role in
	agent) name=meridian-agent user=meridian-agent state=/var/lib/meridian-agent ;;
	collector) name=meridian user=meridian state=/var/lib/meridian ;;
	esac
	install_binary "$src" "$name"
	ensure_user "$user" "$state"
	local ids uid gid
	ids=$(owner "$user")
	uid=${ids%:*} gid=${ids#*:}
	# systemd makes StateDirectory itself; this is for running without it.
	install -d -m 0750 -o "$uid" -g "$gid" "$root$state"
	if [[ $role == agent ]]; then
		install_example "$here/systemd/agent.env" agent.env 0600
		install_example "$here/systemd/agent.yml" agent.yml 0644
	else
		install -d -m 0750 -o "$uid" -g "$gid" "$root$state/spool"
		install_example "$here/systemd/meridian.env" meridian.env 0600
	fi
	install -d -m 0755 "$root/etc/systemd/system"
	install -m 0644 "$here/systemd/$name.service" "$root/etc/systemd/system/$name.service"
	say "installed $root/etc/systemd/system/$name.service"
	units+=("$name.service")
}

# activate enables the units and (re)starts what should run.
activate() {
	if ((!use_systemctl)); then
		say "not calling systemctl (--no-systemctl); run ${units[*]} some other way"
		return
	fi
	if [[ -n $root ]]; then
		systemctl --root="$root" enable "${units[@]}" >&2
		return
	fi
	systemctl daemon-reload
	systemctl enable "${units[@]}" >&2
	local u
	for u in "${units[@]}"; do
		if ((start)) || systemctl is-active --quiet "$u"; then
			systemctl restart "$u"
			say "(re)started $u"
		else
			say "fill in /etc/meridian, then: systemctl start $u"
		fi
	done
}

main() {
	parse_args "$@"
	units=()
	local b seen=""
	for b in "${bins[@]}"; do
		[[ -f $b && -x $b ]] || die 2 "$b is not an executable file"
		local role
		role=$(role_of "$b")
		[[ " $seen " != *" $role "* ]] || die 2 "two binaries for the $role: give one"
		seen+=" $role"
		install_role "$role" "$b"
	done
	activate
}

main "$@"
