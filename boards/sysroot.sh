#!/bin/sh
# A private sysroot with a cross board's libraries, for a machine where the
# multiarch -dev packages cannot be installed system-wide (Multi-Arch: same
# packages must have the host's exact versions; a lagging mirror index for
# the foreign architecture makes that impossible). Nothing is installed: the
# target's packages are fetched with apt-get download and unpacked with
# dpkg-deb -x under build/BOARD-sysroot/root. Needs the architecture added
# (dpkg --add-architecture) and its index (apt-get update).
#   boards/sysroot.sh BOARD
# then: make BOARD=BOARD SYSROOT=build/BOARD-sysroot/root [check|package]
set -eu
board=${1:?usage: boards/sysroot.sh BOARD}
here=$(cd "$(dirname "$0")" && pwd)
mk="$here/$board/board.mk"
arch=$(sed -n 's/^DEB_ARCH[[:space:]]*[:?]*=[[:space:]]*//p' "$mk")
[ -n "$arch" ] || { echo "$board is not a cross board" >&2; exit 2; }
top="$here/../build/$board-sysroot"
mkdir -p "$top/debs" "$top/root"

# the -dev packages and every library they pull in, for the target
# architecture; the C library's headers and startup files come from the
# cross toolchain (libc6-dev-ARCH-cross), libc6 is here for its shlibs
dev="libsqlite3-dev libcurl4-openssl-dev libgps-dev libcjson-dev libsodium-dev
libcmocka-dev libsystemd-dev zlib1g-dev libgpiod-dev libmicrohttpd-dev"
want=$(for p in $dev; do echo "$p:$arch"; done)
# shellcheck disable=SC2086
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances --no-pre-depends $want 2>/dev/null |
	grep -v '^ ' | grep ":$arch\$" | grep -v '^<' | sort -u |
	grep -v -E '^(libelogind0|pkg-config|pkgconf|pkgconf-bin|libpkgconf3|libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt-dev|libcrypt1|libnsl-dev|libnsl2|libtirpc-dev|libtirpc3|rpcsvc-proto|gcc-12-base|libgcc-s1|libstdc\+\+6):')
cd "$top/debs"
# shellcheck disable=SC2086
apt-get download $pkgs
root=$(cd "$top/root" && pwd)
# A private dpkg database of what is unpacked, paths under the sysroot, so
# that dpkg-shlibdeps --admindir finds each library's package and shlibs
# (boards/package.sh: the .deb's Depends).
admin="$top/admin"
rm -rf "$admin"
mkdir -p "$admin/info" "$admin/updates"
echo 1 >"$admin/info/format"
: >"$admin/status"
for d in ./*.deb; do
	dpkg-deb -x "$d" "$root"
	pkg=$(dpkg-deb -f "$d" Package)
	name=$pkg
	[ "$(dpkg-deb -f "$d" Multi-Arch)" = same ] && name="$pkg:$arch"
	{
		dpkg-deb -f "$d" | sed '/^Package:/a Status: install ok installed'
		echo
	} >>"$admin/status"
	dpkg-deb -c "$d" | awk '{print $6}' | sed -e 's|^\./|/|' -e 's|/$||' |
		grep -v -e '^/*$' | sed "s|^|$root|" >"$admin/info/$name.list"
	rm -rf "$top/ctl"
	dpkg-deb -e "$d" "$top/ctl"
	for f in shlibs symbols; do
		if [ -f "$top/ctl/$f" ]; then cp "$top/ctl/$f" "$admin/info/$name.$f"; fi
	done
done
rm -rf "$top/ctl"
# Absolute symlinks (zlib1g-dev's libz.so -> /lib/TRIPLET/libz.so.1.2.13)
# would point at the host, dangle, and the linker would quietly take the
# static libz.a instead: point them into the sysroot.
find "$root" -type l -lname '/*' | while read -r l; do
	ln -sfn "$root$(readlink "$l")" "$l"
done
echo "sysroot: $top/root ($(echo "$pkgs" | wc -w) packages)"
