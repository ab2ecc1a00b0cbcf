#!/bin/sh
# The flashable image of a board (make BOARD=… image), inspected without
# mounting anything: the partition table, both file systems clean and
# labelled as /etc/fstab names them, the boot partition's note, our
# programs built for the board's CPU, the ess system user and its state
# directory, the units enabled (essd, first-boot enrollment, gpsd,
# networkd, timesyncd), the first-boot token path, the board's own
# configuration, Debian's security updates in its apt sources, the root
# account locked, and the bmap matching the image.
# TAP output. Usage: tests/image/check_image.sh IMAGE BOARD
set -u
img=${1:?usage: tests/image/check_image.sh IMAGE BOARD}
board=${2:?usage: tests/image/check_image.sh IMAGE BOARD}
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { # description, then a command
	d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else not_ok "$d"; fi
}
finish() {
	echo "1..$n"
	[ $failed = 0 ]
	exit $?
}
if [ ! -f "$img" ]; then
	not_ok "no image $img (make BOARD=$board image first)"
	finish
fi
tmp=$(mktemp -d /tmp/ess-imgcheck-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

# ---- partitions: MBR, 1: FAT32 (LBA) bootable, 2: Linux ----
sfdisk --dump "$img" >"$tmp/table" 2>/dev/null
p1=$(grep "^$img"'1 :' "$tmp/table")
p2=$(grep "^$img"'2 :' "$tmp/table")
field() { echo "$1" | sed -n "s/.*$2= *\\([0-9a-z]*\\).*/\\1/p"; }
if grep -q '^label: dos' "$tmp/table" && [ "$(field "$p1" type)" = c ] &&
	echo "$p1" | grep -q bootable && [ "$(field "$p2" type)" = 83 ] &&
	[ "$(field "$p1" start)" = 2048 ]; then
	ok "partitions: dos label, 1 FAT32 bootable at 1 MiB, 2 Linux"
else
	not_ok "partitions: $(tr '\n' ';' <"$tmp/table")"
	finish
fi
dd if="$img" of="$tmp/boot" bs=512 skip="$(field "$p1" start)" count="$(field "$p1" size)" \
	conv=sparse status=none
dd if="$img" of="$tmp/root" bs=512 skip="$(field "$p2" start)" count="$(field "$p2" size)" \
	conv=sparse status=none

# ---- the boot partition ----
check "boot: FAT file system clean" fsck.vfat -n "$tmp/boot"
check "boot: labelled ESSBOOT" sh -c "fatlabel '$tmp/boot' | grep -qx ESSBOOT"
check "boot: ESS-README.txt says where the token goes" \
	sh -c "mtype -i '$tmp/boot' ::/ESS-README.txt | grep -q 'named ess-token'"
check "boot: no token in a fresh image" sh -c "! mdir -i '$tmp/boot' ::/ess-token"

# ---- the root file system ----
check "root: ext4 clean (e2fsck -fn)" e2fsck -fn "$tmp/root"
check "root: labelled ESSROOT" sh -c "e2label '$tmp/root' | grep -qx ESSROOT"
cat_() { debugfs -R "cat $1" "$tmp/root" 2>/dev/null; }
stat_() { debugfs -R "stat $1" "$tmp/root" 2>/dev/null; }
cat_ /etc/fstab >"$tmp/fstab"
check "fstab: / by LABEL=ESSROOT, /boot by LABEL=ESSBOOT" sh -c \
	"grep -Eq '^LABEL=ESSROOT[[:space:]]+/[[:space:]]+ext4' '$tmp/fstab' &&
	 grep -Eq '^LABEL=ESSBOOT[[:space:]]+/boot[[:space:]]+vfat' '$tmp/fstab'"

# our programs, built for the board's CPU (ELF e_machine at byte 18)
arch=$(sed -n 's/^DEB_ARCH[[:space:]]*[:?]*=[[:space:]]*//p' "boards/$board/board.mk")
case "$arch" in arm64) machine="b7 00" ;; armhf) machine="28 00" ;; *) machine="?" ;; esac
for prog in /usr/bin/essd /usr/bin/essctl; do
	debugfs -R "dump $prog $tmp/prog" "$tmp/root" >/dev/null 2>&1
	m=$(od -An -tx1 -j18 -N2 "$tmp/prog" 2>/dev/null | tr -s ' ' | sed 's/^ //')
	if [ "$m" = "$machine" ]; then ok "$prog built for $arch"; else
		not_ok "$prog for $arch: e_machine '$m', want '$machine'"
	fi
	rm -f "$tmp/prog"
done

# packages installed (dpkg's own record, not only files)
cat_ /var/lib/dpkg/status >"$tmp/status"
for pkg in ess-agent gpsd systemd-sysv udev libgpiod2; do
	check "dpkg: $pkg installed" awk -v p="$pkg" '
		$1 == "Package:" { cur = $2 }
		$1 == "Status:" && cur == p && $0 ~ /install ok installed/ { found = 1 }
		END { exit !found }' "$tmp/status"
done
check "dpkg: ess-agent is the $arch package" awk '
	$1 == "Package:" { cur = $2 }
	cur == "ess-agent" && $1 == "Architecture:" { a = $2 }
	END { exit a != "'"$arch"'" }' "$tmp/status"

# the system user and its private state directory
cat_ /etc/passwd >"$tmp/passwd"
cat_ /etc/group >"$tmp/group"
ess_uid=$(awk -F: '$1 == "ess" { print $3 }' "$tmp/passwd")
if [ -n "$ess_uid" ] && [ "$ess_uid" -lt 1000 ] &&
	awk -F: '$1 == "ess" && $7 == "/usr/sbin/nologin" { f = 1 } END { exit !f }' "$tmp/passwd" &&
	grep -q '^ess:' "$tmp/group"; then
	ok "user: ess is a system user ($ess_uid) without a login shell, group ess"
else not_ok "user: ess in /etc/passwd and /etc/group"; fi
st=$(stat_ /var/lib/ess)
if echo "$st" | grep -Eq "User: +$ess_uid " && echo "$st" | grep -q 'Mode:  *0700'; then
	ok "/var/lib/ess owned by ess, mode 0700"
else not_ok "/var/lib/ess: $(echo "$st" | grep -E 'User|Mode' | tr -s ' ')"; fi
check "root account locked" sh -c "debugfs -R 'cat /etc/shadow' '$tmp/root' 2>/dev/null | grep -q '^root:!'"

# units enabled: the symlinks systemctl enable made
wants() { # target.wants, unit
	debugfs -R "stat /etc/systemd/system/$1/$2" "$tmp/root" 2>/dev/null |
		grep -q "Fast link dest: \"/lib/systemd/system/$2\""
}
for u in multi-user.target.wants:essd.service multi-user.target.wants:ess-firstboot.service \
	multi-user.target.wants:systemd-networkd.service \
	sysinit.target.wants:systemd-timesyncd.service sockets.target.wants:gpsd.socket; do
	check "enabled: ${u#*:}" wants "${u%%:*}" "${u#*:}"
done
check "ess-firstboot reads the token at /boot/ess-token" sh -c \
	"debugfs -R 'cat /lib/systemd/system/ess-firstboot.service' '$tmp/root' 2>/dev/null |
	 grep -qx 'ConditionPathExists=/boot/ess-token'"
check "/etc/ess/essd.conf is the $board configuration" sh -c \
	"debugfs -R 'cat /etc/ess/essd.conf' '$tmp/root' 2>/dev/null | grep -Eq '^board *= *$board\$'"
check "the $board udev rules are installed" sh -c \
	"debugfs -R 'cat /lib/udev/rules.d/70-ess-agent.rules' '$tmp/root' 2>/dev/null |
	 cmp -s - boards/$board/70-ess-agent.rules"
check "a wired network by DHCP (networkd)" sh -c \
	"debugfs -R 'cat /etc/systemd/network/20-wired.network' '$tmp/root' 2>/dev/null | grep -qx 'DHCP=yes'"
# built with Debian's security and stable updates, and the device's apt
# keeps them (ESS_IMAGE_SECURITY=0 builds fail here on purpose)
check "apt sources: security updates and stable updates" sh -c \
	"debugfs -R 'cat /etc/apt/sources.list' '$tmp/root' 2>/dev/null | grep -Eq '^deb .* [a-z]+-security main' &&
	 debugfs -R 'cat /etc/apt/sources.list' '$tmp/root' 2>/dev/null | grep -Eq '^deb .* [a-z]+-updates main'"
check "machine-id empty: each device makes its own at first boot" sh -c \
	"[ -z \"\$(debugfs -R 'cat /etc/machine-id' '$tmp/root' 2>/dev/null)\" ] &&
	 debugfs -R 'stat /etc/machine-id' '$tmp/root' 2>/dev/null | grep -q 'Size: 0'"

# ---- the bmap describes this image ----
size=$(stat -c %s "$img")
check "bmap: ImageSize $size" grep -Eq "<ImageSize> *$size *</ImageSize>" "$img.bmap"

finish
