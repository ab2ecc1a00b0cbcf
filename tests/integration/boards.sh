#!/bin/sh
# The board files, checked with the real tools: each board's packaged
# configuration passes essd check, the systemd units pass systemd-analyze
# verify and keep their hardening, gpsd defaults and udev rules are well
# formed, the cross boards pick their toolchain and pkg-config, armhf keeps
# libgps and libgpiod on their own time_t only, and the host package is
# lintian-clean.
# TAP output for tests/run.sh.
set -u
build=${ESS_BUILD:-build/host}
essd="$build/essd"
tmp=$(mktemp -d /tmp/ess-boards-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
say() { sed 's/^/# /'; }
# make -n below must not inherit the calling make's variables (SANITIZE=1
# moves every build directory; make exports command-line variables)
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES SANITIZE FUZZ BUILD BOARD SYSROOT
# the multiarch form is what is inspected: no install, no sysroot made by
# merely asking make (boards/common/cross.mk)
export ESS_SYSROOT_AUTO=0

boards=""
for d in boards/*/; do
	b=$(basename "$d")
	[ -f "boards/$b/board.mk" ] && boards="$boards $b"
done
case "$boards" in *host*vehicle-arm64* | *vehicle-arm64*host*) ;; *) not_ok "boards found: $boards" ;; esac

for b in $boards; do
	conf=boards/$b/essd.conf
	[ -f boards/$b/essd-system.conf ] && conf=boards/$b/essd-system.conf
	if out=$("$essd" check -c "$conf" 2>&1); then ok "$b: $conf passes essd check"; else
		not_ok "$b: $conf passes essd check"
		echo "$out" | say
	fi
	if "$essd" check -c "$conf" --dump | grep -q "^board = $b\$"; then ok "$b: device.board is $b"; else
		not_ok "$b: device.board is $b"
	fi

	g=boards/$b/gpsd
	if [ -f "$g" ] && sh -n "$g" && (. "$g" && [ "${START_DAEMON:-}" = true ] && [ -n "${GPSD_OPTIONS+x}" ] &&
		[ -n "${DEVICES+x}" ]); then ok "$b: gpsd defaults"; else not_ok "$b: gpsd defaults"; fi

	# udev rules: every clause a known key with a quoted value; groups that
	# the package or Debian provide
	r=boards/$b/70-ess-agent.rules
	bad=$(grep -v '^[[:space:]]*\(#\|$\)' "$r" | tr ',' '\n' | sed 's/^[[:space:]]*//' |
		grep -v -E '^(SUBSYSTEM|KERNEL|ACTION|ATTRS\{[a-zA-Z_]+\}|ENV\{[A-Z_]+\})=="[^"]*"$' |
		grep -v -E '^(SYMLINK\+|RUN\+)="[^"]+"$' |
		grep -v -E '^GROUP="(ess|dialout|input)"$' | grep -v -E '^MODE="0[0-7]{3}"$')
	if [ -f "$r" ] && [ -z "$bad" ]; then ok "$b: udev rules well formed"; else
		not_ok "$b: udev rules well formed"
		echo "$bad" | say
	fi
done

# The field boards: their gpsd setting names the receiver's udev symlink.
for b in vehicle-arm64 handheld-armhf; do
	if grep -q '^DEVICES="/dev/gps0"' boards/$b/gpsd && grep -q 'SYMLINK+="gps0"' boards/$b/70-ess-agent.rules; then
		ok "$b: gpsd reads /dev/gps0, which udev makes"
	else not_ok "$b: gpsd reads /dev/gps0, which udev makes"; fi
done

# systemd units: verify with the binary path pointed at this build (the
# check wants an executable), any message is a failure; a broken copy must
# be caught, or the check proves nothing.
if command -v systemd-analyze >/dev/null; then
	abs=$(readlink -f "$essd")
	for u in essd.service ess-firstboot.service; do
		sed "s|/usr/bin/essd|$abs|g" "boards/common/$u" >"$tmp/$u"
	done
	out=$(systemd-analyze verify --man=no "$tmp/essd.service" "$tmp/ess-firstboot.service" 2>&1)
	if [ $? = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: essd.service, ess-firstboot.service"; else
		not_ok "systemd-analyze verify: essd.service, ess-firstboot.service"
		echo "$out" | say
	fi
	sed 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' "$tmp/essd.service" >"$tmp/broken.service"
	out=$(systemd-analyze verify --man=no "$tmp/broken.service" 2>&1)
	if [ -n "$out" ]; then ok "systemd-analyze verify catches a misspelt key"; else
		not_ok "systemd-analyze verify catches a misspelt key"
	fi
	# systemd's own score of the sandbox (0 best .. 10 worst): a guard
	# against a hardening line lost in an edit
	for u in essd.service ess-firstboot.service; do
		score=$(systemd-analyze security --offline=true --no-pager "$tmp/$u" 2>/dev/null |
			sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }'; then
			ok "systemd-analyze security: $u exposure $score (at most 2.5)"
		else not_ok "systemd-analyze security: $u exposure '$score' (at most 2.5)"; fi
	done
else
	not_ok "systemd-analyze is not installed (boards/deps.sh installs systemd)"
fi
for want in 'User=ess' 'Type=notify' 'WatchdogSec=' 'ProtectSystem=strict' 'StateDirectory=ess' \
	'NoNewPrivileges=yes' 'CapabilityBoundingSet=$' 'PrivateTmp=yes' 'ProtectHome=yes' \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK$' 'SystemCallFilter=@system-service'; do
	if grep -q "^$want" boards/common/essd.service; then ok "essd.service: $want"; else
		not_ok "essd.service: $want"
	fi
done
if grep -q '^ConditionPathExists=/boot/ess-token' boards/common/ess-firstboot.service &&
	grep -q '^ExecStartPost=+/bin/rm -f /boot/ess-token' boards/common/ess-firstboot.service; then
	ok "ess-firstboot.service: runs while the token exists, deletes it after success only"
else not_ok "ess-firstboot.service: token condition and removal"; fi

# Cross boards: the toolchain, pkg-config and test wrapper they choose.
for b in vehicle-arm64:aarch64-linux-gnu:qemu-aarch64 handheld-armhf:arm-linux-gnueabihf:qemu-arm; do
	name=${b%%:*}
	rest=${b#*:}
	triplet=${rest%%:*}
	qemu=${rest#*:}
	cmd=$(make -s -n -B BOARD="$name" "build/$name/obj/agent/log.o" 2>/dev/null | grep ' -c ')
	case "$cmd" in
	"$triplet-gcc "*"-D_TIME_BITS=64"*) ok "$name: $triplet-gcc, 64-bit time" ;;
	*) not_ok "$name: compiler command: $cmd" ;;
	esac
	# the target's .pc files only; their flags appear once the target's -dev
	# packages are there (boards/deps.sh ensure $name)
	pcdir=/usr/lib/$triplet/pkgconfig
	pc=$(make -s BOARD="$name" --eval 'print-pkg-config: ; @echo "$(PKG_CONFIG)"' print-pkg-config 2>/dev/null)
	if [ "$pc" = "PKG_CONFIG_LIBDIR=$pcdir:/usr/share/pkgconfig pkg-config" ] &&
		{ ! PKG_CONFIG_LIBDIR=$pcdir pkg-config --exists sqlite3 2>/dev/null ||
			case "$cmd" in *"-I/usr/include/$triplet"*) true ;; *) false ;; esac; }; then
		ok "$name: pkg-config reads $pcdir only"
	else not_ok "$name: pkg-config reads $pcdir only"; fi
	chk=$(make -s -n BOARD="$name" check 2>/dev/null | grep 'tests/run.sh')
	case "$chk" in
	*"ESS_TEST_WRAPPER='$qemu'"*"ESS_UNIT_ONLY=1"*) ok "$name: make check runs the unit tests under $qemu" ;;
	*) not_ok "$name: make check: $chk" ;;
	esac
done
# armhf: only the libgps user sees libgps's 32-bit time_t
gpsd_cmd=$(make -s -n -B BOARD=handheld-armhf LIBGPS_TIME_BITS=32 build/handheld-armhf/obj/hal/gps_gpsd.o 2>/dev/null | grep ' -c ')
other_cmd=$(make -s -n -B BOARD=handheld-armhf LIBGPS_TIME_BITS=32 build/handheld-armhf/obj/hal/gps.o 2>/dev/null | grep ' -c ')
case "$gpsd_cmd" in *-U_TIME_BITS*) g=1 ;; *) g=0 ;; esac
case "$other_cmd" in *-U_TIME_BITS*) o=1 ;; *) o=0 ;; esac
if [ $g = 1 ] && [ $o = 0 ]; then ok "handheld-armhf: only hal/gps_gpsd.c is built with libgps's time_t"; else
	not_ok "handheld-armhf: -U_TIME_BITS on gps_gpsd.o ($g) and nowhere else ($o)"
fi

# ...and that is what keeps the layouts equal: a probe built with the flags
# gps_gpsd.o gets sees libgps's gps_data_t as libgps28:armhf (built with the
# default 32-bit time_t) does, where the plain 64-bit flags would move every
# field after the first timespec (fix.latitude: 48 -> 64 bytes). The probe
# needs only the cross libc and gps.h (architecture-independent), runs
# under qemu-arm.
if command -v arm-linux-gnueabihf-gcc >/dev/null && command -v qemu-arm >/dev/null && [ -f /usr/include/gps.h ]; then
	cat >"$tmp/gpsabi.c" <<'PROBE'
#include <gps.h>
#include <stddef.h>
#include <stdio.h>
int main(void)
{
	printf("%zu %zu %zu\n", sizeof(struct gps_data_t), offsetof(struct gps_data_t, fix.time),
	       offsetof(struct gps_data_t, fix.latitude));
	return 0;
}
PROBE
	flags=$(echo "$gpsd_cmd" | grep -o -- '-[DU]_[A-Z_]*BITS[=0-9]*' | tr '\n' ' ')
	lib=$(arm-linux-gnueabihf-gcc -static -o "$tmp/abi-lib" "$tmp/gpsabi.c" 2>&1 && qemu-arm "$tmp/abi-lib")
	ours=$(arm-linux-gnueabihf-gcc $flags -static -o "$tmp/abi-ours" "$tmp/gpsabi.c" 2>&1 && qemu-arm "$tmp/abi-ours")
	t64=$(arm-linux-gnueabihf-gcc -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64 -static -o "$tmp/abi-64" "$tmp/gpsabi.c" 2>&1 && qemu-arm "$tmp/abi-64")
	if [ -n "$lib" ] && [ "$lib" = "$ours" ] && [ "$lib" != "$t64" ]; then
		ok "handheld-armhf: gps_gpsd.o's flags ($flags) give libgps's gps_data_t layout ($lib; 64-bit time_t would be $t64)"
	else
		not_ok "handheld-armhf: gps_data_t layout: library '$lib', gps_gpsd.o '$ours', 64-bit '$t64'"
	fi
else
	not_ok "arm-linux-gnueabihf-gcc, qemu-arm or gps.h missing (boards/deps.sh ensure handheld-armhf)"
fi

# libgpiod 1.6 likewise: struct gpiod_line_event holds a struct timespec, and
# Debian 12's armhf libgpiod2 has a 32-bit time_t. hal/gpio.o (and the unit
# tests' fake library) must see the library's layout, or the event type is
# read from the wrong offset: a press would read as a release.
gpio_cmd=$(make -s -n -B BOARD=handheld-armhf LIBGPIOD_TIME_BITS=32 build/handheld-armhf/obj/hal/gpio.o 2>/dev/null | grep ' -c ')
if command -v arm-linux-gnueabihf-gcc >/dev/null && command -v qemu-arm >/dev/null && [ -f /usr/include/gpiod.h ]; then
	cat >"$tmp/gpiodabi.c" <<'PROBE'
#include <gpiod.h>
#include <stddef.h>
#include <stdio.h>
int main(void)
{
	printf("%zu %zu\n", sizeof(struct gpiod_line_event), offsetof(struct gpiod_line_event, event_type));
	return 0;
}
PROBE
	flags=$(echo "$gpio_cmd" | grep -o -- '-[DU]_[A-Z_]*BITS[=0-9]*' | tr '\n' ' ')
	lib=$(arm-linux-gnueabihf-gcc -static -o "$tmp/gabi-lib" "$tmp/gpiodabi.c" 2>&1 && qemu-arm "$tmp/gabi-lib")
	ours=$(arm-linux-gnueabihf-gcc $flags -static -o "$tmp/gabi-ours" "$tmp/gpiodabi.c" 2>&1 && qemu-arm "$tmp/gabi-ours")
	t64=$(arm-linux-gnueabihf-gcc -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64 -static -o "$tmp/gabi-64" "$tmp/gpiodabi.c" 2>&1 && qemu-arm "$tmp/gabi-64")
	if [ -n "$lib" ] && [ "$lib" = "$ours" ] && [ "$lib" != "$t64" ]; then
		ok "handheld-armhf: gpio.o's flags ($flags) give libgpiod's gpiod_line_event layout ($lib; 64-bit time_t would be $t64)"
	else
		not_ok "handheld-armhf: gpiod_line_event layout: library '$lib', gpio.o '$ours', 64-bit '$t64'"
	fi
else
	not_ok "arm-linux-gnueabihf-gcc, qemu-arm or gpiod.h missing (boards/deps.sh ensure handheld-armhf)"
fi

# The host package: built from this build, lintian without errors or warnings.
if command -v lintian >/dev/null && command -v dpkg-shlibdeps >/dev/null; then
	version=$(cat VERSION)
	arch=$(dpkg --print-architecture)
	cp -a "$build/essd" "$build/essctl" "$build/ess-ui" "$tmp/"
	if deb=$(boards/package.sh "$tmp" host "$version" "$arch" strip boards/host/essd-system.conf 2>"$tmp/pkg.err"); then
		ok "boards/package.sh builds $(basename "$deb")"
		contents=$(dpkg-deb -c "$deb")
		for f in ./usr/bin/essd ./usr/bin/essctl ./lib/systemd/system/essd.service \
			./lib/systemd/system/ess-firstboot.service ./lib/udev/rules.d/70-ess-agent.rules \
			./usr/bin/ess-ui ./lib/systemd/system/ess-ui.service ./lib/systemd/system/ess-kiosk.service \
			./usr/lib/ess-agent/ess-kiosk \
			./etc/ess/essd.conf ./etc/ess/gpsd; do
			case "$contents" in *" $f"*) ;; *) not_ok "package holds $f" ;; esac
		done
		if dpkg-deb -f "$deb" Depends | grep -q 'adduser' && dpkg-deb -e "$deb" "$tmp/ctl" &&
			grep -q 'adduser --system' "$tmp/ctl/postinst" && grep -qx '/etc/ess/essd.conf' "$tmp/ctl/conffiles"; then
			ok "package: system user in postinst, /etc/ess/essd.conf a conffile"
		else not_ok "package: system user in postinst, /etc/ess/essd.conf a conffile"; fi
		lint=$(lintian --pedantic "$deb" 2>&1 | grep -E '^(E|W):')
		if [ -z "$lint" ]; then ok "lintian --pedantic: no error, no warning"; else
			not_ok "lintian --pedantic: no error, no warning"
			echo "$lint" | say
		fi
	else
		not_ok "boards/package.sh builds the host package"
		say <"$tmp/pkg.err"
	fi
else
	not_ok "lintian and dpkg-dev are not installed (boards/deps.sh installs them)"
fi

echo "1..$n"
[ $failed = 0 ]
