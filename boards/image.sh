#!/bin/sh
# A flashable disk image for a board: Debian 12 for the board's
# architecture with systemd, udev, gpsd and our package, as a partitioned
# disk image with
#   1: ESSBOOT  FAT32, mounted at /boot: where the technician puts the
#               one-time token (/boot/ess-token, ess-firstboot.service)
#   2: ESSROOT  ext4, the root file system (made by mkfs.ext4 -d, no mount)
# and a .bmap for bmaptool. Usage (as root; make BOARD=… image does it):
#   boards/image.sh BUILD BOARD DEB
# writes BUILD/ess-BOARD.img and BUILD/ess-BOARD.img.bmap. ESS_IMAGE_CONF
# (make … IMAGE_CONF=FILE): the fleet's /etc/ess/essd.conf (server.url,
# server.server_key) in place of the package's; either way the image's own
# essd (run under qemu) must pass `essd check` on it, or no image.
#
# The foreign-architecture packages' maintainer scripts have to run (the
# system user, enabled units, gpsd's user): they run under qemu-user through
# binfmt_misc. This machine has none registered, and registering one would
# change it for everyone, so the build runs in its own user namespace (uids
# mapped one to one, so files get their real owners) with its own
# binfmt_misc instance (Linux >= 6.7 gives each user namespace its own) that
# knows qemu-aarch64-static or qemu-arm-static. Nothing outside changes.
#
# Not in the image: the board's kernel, device tree and boot loader. They
# come from the terminal's vendor and go on ESSBOOT (boards/README.md).
set -eu

if [ "${1:-}" = --inner ]; then
	shift
	inner=1
else
	inner=0
fi
build=${1:?usage: boards/image.sh BUILD BOARD DEB}
board=${2:?usage: boards/image.sh BUILD BOARD DEB}
deb=${3:?usage: boards/image.sh BUILD BOARD DEB}
suite=${ESS_IMAGE_SUITE:-bookworm}
mirror=${ESS_IMAGE_MIRROR:-http://deb.debian.org/debian}
# Debian's security updates and stable updates are part of the image (a
# device in the field holding children's case files must not ship with
# known holes in OpenSSL or curl). ESS_IMAGE_SECURITY=0 leaves them out, only
# for a mirror whose security index is broken; image-check then fails.
security_mirror=${ESS_IMAGE_SECURITY_MIRROR:-${mirror%/debian}/debian-security}
security=${ESS_IMAGE_SECURITY:-1}
boot_mb=${ESS_IMAGE_BOOT_MB:-256}

arch=$(sed -n 's/^DEB_ARCH[[:space:]]*[:?]*=[[:space:]]*//p' "boards/$board/board.mk")
case "$arch" in
arm64) qemu=qemu-aarch64-static
	magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
	mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
armhf) qemu=qemu-arm-static
	magic='\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
	mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
*) echo "image: board $board ($arch) has no image (only arm64 and armhf boards)" >&2
	exit 2 ;;
esac
img="$build/ess-$board.img"

if [ "$inner" = 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "image: run as root (the user namespace maps every uid one to one)" >&2
		exit 1
	fi
	for t in mmdebstrap "$qemu" mkfs.ext4 mkfs.vfat mcopy sfdisk bmaptool unshare; do
		command -v "$t" >/dev/null || {
			echo "image: $t missing (boards/deps.sh ensure $board)" >&2
			exit 1
		}
	done
	[ -f "$deb" ] || {
		echo "image: no package $deb (make BOARD=$board package)" >&2
		exit 1
	}
	if [ -n "${ESS_IMAGE_CONF:-}" ] && [ ! -f "$ESS_IMAGE_CONF" ]; then
		echo "image: no configuration file $ESS_IMAGE_CONF" >&2
		exit 1
	fi
	# a failed build must not leave the last image there to be flashed
	rm -f "$img" "$img.bmap"
	work=$(mktemp -d /tmp/ess-image-XXXXXX)
	pid=""
	cleanup() {
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
		rm -rf "$work"
	}
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	# The child waits until we have written its uid and gid maps (only a
	# process outside the namespace may map every uid).
	ESS_IMAGE_WORK=$work unshare --user --mount --pid --fork --kill-child \
		sh "$0" --inner "$build" "$board" "$deb" &
	pid=$!
	i=0
	while [ "$(readlink /proc/$pid/ns/user 2>/dev/null)" = "$(readlink /proc/self/ns/user)" ] ||
		[ -z "$(readlink /proc/$pid/ns/user 2>/dev/null)" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "image: the namespace did not come up" >&2; exit 1; }
		sleep 0.1
	done
	echo "0 0 4294967295" >"/proc/$pid/uid_map"
	echo "0 0 4294967295" >"/proc/$pid/gid_map"
	rc=0
	wait "$pid" || rc=$?
	pid=""
	[ $rc = 0 ] || { echo "image: failed ($rc)" >&2; exit $rc; }
	bmaptool -q create -o "$img.bmap" "$img"
	echo "$img"
	exit 0
fi

# ---- inside the namespace: root here, the same uids as outside ----
work=${ESS_IMAGE_WORK:?}
while [ -z "$(cat /proc/self/uid_map)" ]; do sleep 0.1; done
mount -t proc proc /proc
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
# F: qemu is opened now, so it need not exist inside the new root
printf '%s' ":ess-$arch:M::$magic:$mask:$(command -v "$qemu"):F" \
	>/proc/sys/fs/binfmt_misc/register

root="$work/root"
# Our package goes in by a hook, with apt inside the new root: apt outside
# (mmdebstrap's --include of a .deb path) hands dpkg a path that does not
# exist inside it.
ESS_IMAGE_DEB=$(realpath "$deb")
ESS_IMAGE_CONF=${ESS_IMAGE_CONF:+$(realpath "$ESS_IMAGE_CONF")}
export ESS_IMAGE_DEB ESS_IMAGE_CONF
# A device: systemd as init, udev (the rules give essd its LEDs and GPIO
# lines), networkd and timesyncd (the token and TLS need the time), gpsd,
# CA certificates; our package pulls its libraries. No ssh, no desktop.
# /sys: sysfs cannot be mounted from a user namespace without its own
# network namespace (apt needs the network); no maintainer script needs it.
security_line=
[ "$security" = 0 ] || security_line="deb $security_mirror $suite-security main"
mmdebstrap --mode=root --variant=apt --architectures="$arch" --skip=chroot/mount/sys \
	--include=systemd-sysv,udev,kmod,iproute2,systemd-timesyncd,ca-certificates,gpsd,dosfstools \
	--customize-hook='cp "$ESS_IMAGE_DEB" "$1/tmp/ess-agent.deb" && chroot "$1" apt-get install -y --no-install-recommends /tmp/ess-agent.deb && rm "$1/tmp/ess-agent.deb"' \
	--customize-hook='[ -z "$ESS_IMAGE_CONF" ] || install -m 0644 "$ESS_IMAGE_CONF" "$1/etc/ess/essd.conf"' \
	--customize-hook='chroot "$1" /usr/bin/essd check -c /etc/ess/essd.conf' \
	--customize-hook='echo ess-device >"$1/etc/hostname"' \
	--customize-hook='printf "%s\n" "LABEL=ESSROOT / ext4 defaults,noatime 0 1" "LABEL=ESSBOOT /boot vfat defaults,umask=0077,nofail 0 2" >"$1/etc/fstab"' \
	--customize-hook='printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" >"$1/etc/systemd/network/20-wired.network"' \
	--customize-hook='chroot "$1" systemctl enable systemd-networkd.service systemd-timesyncd.service gpsd.socket' \
	--customize-hook='chroot "$1" passwd --lock root' \
	--customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
	"$suite" "$root" "deb $mirror $suite main" "deb $mirror $suite-updates main" \
	${security_line:+"$security_line"}

# The root file system: its size with room to grow (the store, logs).
used=$(du -sm "$root" | cut -f1)
root_mb=$((used + used / 2 + 256))
rm -f "$work/root.img"
mkfs.ext4 -q -L ESSROOT -E root_owner=0:0 -d "$root" "$work/root.img" "${root_mb}M"

# The boot partition: empty but for a note on where the token goes.
mkfs.vfat -C -n ESSBOOT -F 32 "$work/boot.img" $((boot_mb * 1024)) >/dev/null
cat >"$work/ESS-README.txt" <<'EOF'
ESS field agent - boot partition (mounted at /boot on the device).

First boot: put the one-time enrollment token from the ESS portal here,
as a file named ess-token (no extension). ess-firstboot.service enrolls the
device with it at boot and deletes it after success. The board's kernel,
device tree and boot loader (from the vendor) also go on this partition.
EOF
mcopy -i "$work/boot.img" "$work/ESS-README.txt" ::/ESS-README.txt

# The disk: MBR, 1 MiB aligned, boot partition bootable.
total_mb=$((1 + boot_mb + root_mb))
mkdir -p "$(dirname "$img")"
rm -f "$img"
truncate -s "${total_mb}M" "$img"
sfdisk --quiet "$img" <<EOF
label: dos
start=1MiB, size=${boot_mb}MiB, type=c, bootable
start=$((1 + boot_mb))MiB, type=83
EOF
dd if="$work/boot.img" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$img" bs=1M seek=$((1 + boot_mb)) conv=notrunc,sparse status=none
