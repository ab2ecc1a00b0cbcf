#!/bin/sh
# Installs (or checks for) the Debian packages that building, testing and the
# demo need. "deps.sh check" only reports; "deps.sh ensure" installs what is
# missing when run as root and otherwise prints the command to run.
# The optional second argument is the board: a cross board (one whose
# board.mk sets DEB_HOST_MULTIARCH and DEB_ARCH) also needs its cross compiler and the target
# architecture's -dev packages (Debian multiarch), and qemu-user to run the
# unit tests. The host list has the armhf cross compiler and qemu-user too:
# make check proves, with a probe, that libgps's armhf struct layout is kept
# (tests/integration/boards.sh).
set -eu

# chromium, fonts-thai-tlwg, nodejs: the touch UI's browser test (tests/ui/; npm
# comes with the machine's nodejs, playwright-core from tests/ui/package-lock.json).
# cage, xwayland: the kiosk compositor of ess-kiosk.service (Debian's cage
# will not start without Xwayland; the package recommends both with
# chromium); tests/integration/kiosk.sh runs it on wlroots' headless backend.
PACKAGES="build-essential pkg-config clang clang-format
libsqlite3-dev sqlite3 libcurl4-openssl-dev libgps-dev libcjson-dev
libsodium-dev libcmocka-dev libmicrohttpd-dev libsystemd-dev zlib1g-dev libgpiod-dev iproute2
gpsd gpsd-clients python3 curl util-linux nginx-light openssl valgrind
dpkg-dev fakeroot lintian systemd adduser
gcc-arm-linux-gnueabihf qemu-user
chromium fonts-thai-tlwg nodejs cage xwayland"

# The libraries the agent links, for a foreign architecture.
CROSS_LIBS="libsqlite3-dev libcurl4-openssl-dev libgps-dev libcjson-dev
libsodium-dev libcmocka-dev libmicrohttpd-dev libsystemd-dev zlib1g-dev
libgpiod-dev"

board=${2:-host}
dir=$(dirname "$0")
arch=""
gnu=""
if [ -f "$dir/$board/board.mk" ]; then
	# a cross board names its GNU triplet; the host board does not
	gnu=$(sed -n 's/^DEB_HOST_MULTIARCH[[:space:]]*[:?]*=[[:space:]]*//p' "$dir/$board/board.mk")
fi
if [ -n "$gnu" ]; then
	arch=$(sed -n 's/^DEB_ARCH[[:space:]]*[:?]*=[[:space:]]*//p' "$dir/$board/board.mk")
	PACKAGES="$PACKAGES gcc-$gnu qemu-user"
	# make BOARD=… image (boards/image.sh): the root file system with
	# mmdebstrap, the target's maintainer scripts under qemu-user-static,
	# the partitions without mounting anything
	PACKAGES="$PACKAGES mmdebstrap qemu-user-static fdisk dosfstools mtools bmap-tools"
	# ESS_SYSROOT (make SYSROOT=…): the libraries come from a private
	# sysroot (boards/sysroot.sh), nothing of the target is installed
	if [ -z "${ESS_SYSROOT:-}" ]; then
		for p in $CROSS_LIBS; do
			PACKAGES="$PACKAGES $p:$arch"
		done
	fi
fi

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done

need_root_hint() { # the command a non-root user should run
	addarch=""
	if [ -n "$arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		addarch="dpkg --add-architecture $arch && "
	fi
	echo "run as root:  ${addarch}apt-get update && apt-get install -y$1" >&2
}
# apt_install PKG...: as root, the foreign architecture added, the index
# fresh enough (other people install on the same machine: wait for the
# lock; a caching proxy may hand out an index older than its Release file,
# "File has unexpected size": ask once more with no-cache; if that fails
# too, the install says clearly what it cannot find)
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	if [ -n "$arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		dpkg --add-architecture "$arch"
	fi
	apt-get -o DPkg::Lock::Timeout=600 update -qq ||
		apt-get -o DPkg::Lock::Timeout=600 -o Acquire::http::No-Cache=true update -qq ||
		echo "apt-get update failed; trying with the indexes there are" >&2
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@"
}

case "${1:-ensure}" in
sysroot)
	# For the Makefile (boards/common/cross.mk), when no SYSROOT is given:
	# prints the private sysroot to build against, or nothing when the
	# target's libraries are installed with multiarch. Multiarch is tried
	# first; where it cannot work (a lagging mirror index for the target,
	# docs/boards.md) a sysroot is made once and used from then on.
	[ -n "$arch" ] || exit 0
	auto="$dir/../build/$board-sysroot"
	if [ -f "$auto/complete" ]; then
		(cd "$auto/root" && pwd)
		exit 0
	fi
	want=""
	for p in $CROSS_LIBS; do
		dpkg-query -W -f='${Status}' "$p:$arch" 2>/dev/null | grep -q 'install ok installed' ||
			want="$want $p:$arch"
	done
	[ -n "$want" ] || exit 0
	# not root: "deps.sh ensure" says what to run
	[ "$(id -u)" = 0 ] || exit 0
	{
		echo "installing the $arch libraries:$want"
		# shellcheck disable=SC2086
		apt_install $want && exit 0
		echo "the $arch libraries cannot be installed next to the host's (a lagging"
		echo "mirror index?): building against a private sysroot instead (docs/boards.md)"
		"$dir/sysroot.sh" "$board" && touch "$auto/complete"
	} >&2 || exit 0
	(cd "$auto/root" && pwd)
	;;
check)
	[ -z "$missing" ] && exit 0
	echo "missing Debian packages:$missing" >&2
	exit 1 ;;
ensure)
	[ -z "$missing" ] && exit 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing Debian packages:$missing" >&2
		need_root_hint "$missing"
		exit 1
	fi
	echo "installing:$missing" >&2
	# shellcheck disable=SC2086
	if ! apt_install $missing; then
		if [ -n "$arch" ]; then
			echo "the $arch libraries cannot be installed next to the host's (a lagging" >&2
			echo "mirror index?): build with a private sysroot instead (docs/boards.md):" >&2
			echo "  boards/sysroot.sh $board && make BOARD=$board SYSROOT=build/$board-sysroot/root" >&2
		fi
		exit 1
	fi ;;
*)
	echo "usage: $0 [check|ensure|sysroot] [BOARD]" >&2
	exit 2 ;;
esac
