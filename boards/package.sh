#!/bin/sh
# Builds the ess-agent Debian package for one board from a staged tree:
#   boards/package.sh BUILD BOARD VERSION DEB_ARCH STRIP CONF [SYSROOT]
# (make BOARD=… package calls it). Everything comes from the build
# directory and boards/: the board's own files where it has them, else
# boards/common. The result is BUILD/ess-agent_VERSION_ARCH.deb.
set -eu
build=$1 board=$2 version=$3 arch=$4 strip=$5 conf=$6 sysroot=${7:-}
here=$(cd "$(dirname "$0")" && pwd)
pick() { # the board's file, else the common one
	if [ -f "$here/$board/$1" ]; then echo "$here/$board/$1"; else echo "$here/common/$1"; fi
}

stage="$build/pkg/root"
rm -rf "$build/pkg"
mkdir -p "$stage/DEBIAN"
# dpkg-deb takes modes as they are on disk: nothing group-writable
umask 022

install -d "$stage/usr/bin"
for p in essd essctl ess-ui; do
	install -m 0755 "$build/$p" "$stage/usr/bin/$p"
	# debug symbols stay in the build tree; lintian wants stripped binaries
	$strip --remove-section=.comment --remove-section=.note --strip-unneeded \
		"$stage/usr/bin/$p"
done

# the touch UI's kiosk launcher (ess-kiosk.service runs it)
install -d "$stage/usr/lib/ess-agent"
install -m 0755 "$here/common/ess-kiosk" "$stage/usr/lib/ess-agent/ess-kiosk"

install -d "$stage/usr/share/man/man8" "$stage/usr/share/man/man1"
gzip -9n <"$here/common/man/essd.8" >"$stage/usr/share/man/man8/essd.8.gz"
gzip -9n <"$here/common/man/ess-ui.8" >"$stage/usr/share/man/man8/ess-ui.8.gz"
gzip -9n <"$here/common/man/essctl.1" >"$stage/usr/share/man/man1/essctl.1.gz"
chmod 0644 "$stage/usr/share/man/man8/essd.8.gz" "$stage/usr/share/man/man8/ess-ui.8.gz" \
	"$stage/usr/share/man/man1/essctl.1.gz"

install -d "$stage/lib/systemd/system" "$stage/lib/systemd/system/gpsd.service.d"
install -m 0644 "$(pick essd.service)" "$stage/lib/systemd/system/essd.service"
install -m 0644 "$(pick ess-firstboot.service)" "$stage/lib/systemd/system/ess-firstboot.service"
for u in ess-ui.service ess-kiosk.service; do
	install -m 0644 "$(pick $u)" "$stage/lib/systemd/system/$u"
done
install -m 0644 "$(pick gpsd-ess.conf)" "$stage/lib/systemd/system/gpsd.service.d/ess-agent.conf"
install -d "$stage/lib/udev/rules.d"
install -m 0644 "$(pick 70-ess-agent.rules)" "$stage/lib/udev/rules.d/70-ess-agent.rules"

install -d "$stage/etc/ess"
install -m 0644 "$conf" "$stage/etc/ess/essd.conf"
install -m 0644 "$(pick gpsd)" "$stage/etc/ess/gpsd"

doc="$stage/usr/share/doc/ess-agent"
install -d "$doc"
install -m 0644 "$here/common/debian/copyright" "$doc/copyright"
for f in README.md docs/*.md; do
	install -m 0644 "$here/../$f" "$doc/$(basename "$f")"
done
date=$(date -R -u -d "@$(git -C "$here/.." log -1 --format=%ct 2>/dev/null || date +%s)")
sed -e "s/@VERSION@/$version/" -e "s/@BOARD@/$board/" -e "s/@DATE@/$date/" \
	"$here/common/debian/changelog.in" | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

for s in postinst prerm postrm; do
	install -m 0755 "$here/common/debian/$s" "$stage/DEBIAN/$s"
done
# /etc/ess files are conffiles: an upgrade keeps a technician's edits
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"

# Library dependencies from the binaries (dpkg-shlibdeps reads the target
# architecture's shlibs/symbols from the multiarch packages).
mkdir -p "$build/pkg/debian"
printf 'Source: ess-agent\n\nPackage: ess-agent\nArchitecture: any\n' >"$build/pkg/debian/control"
set --
if [ -n "$sysroot" ]; then
	# boards/sysroot.sh's private database next to the unpacked tree
	sysroot=$(cd "$sysroot" && pwd)
	triplet=$(dpkg-architecture -a"$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)
	set -- "--admindir=$(dirname "$sysroot")/admin" \
		-l"$sysroot/usr/lib/$triplet" -l"$sysroot/lib/$triplet"
fi
shlibs=$(cd "$build/pkg" && DEB_HOST_ARCH=$arch dpkg-shlibdeps "$@" -O \
	-e root/usr/bin/essd -e root/usr/bin/essctl -e root/usr/bin/ess-ui 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	-e "s/@SHLIBS@/$shlibs/" -e "s/@BOARD@/$board/g" \
	"$here/common/debian/control.in" >"$stage/DEBIAN/control"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z |
	xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

deb="$build/ess-agent_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
