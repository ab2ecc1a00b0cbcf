#!/bin/sh
# make package-test: installs the board's package on THIS machine, checks
# what it set up, removes it, then purges it. Root only, and never part of
# make check (it changes the system: a user, /etc/ess, units).
#   tests/package/dpkg_install.sh DEB BUILD
# Prints TAP lines; exits non-zero on any failure. The package is purged on
# every exit path, so a failed run leaves nothing behind.
set -u
deb=${1:?usage: dpkg_install.sh DEB BUILD}
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { # description, command...
	d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else not_ok "$d"; fi
}
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }

if [ "$(id -u)" != 0 ]; then
	echo "not ok 1 - make package-test installs a package: run it as root"
	exit 1
fi
if dpkg-query -W -f='${Status}' ess-agent 2>/dev/null | grep -q 'installed'; then
	echo "not ok 1 - ess-agent is installed already on this machine: not touching it"
	exit 1
fi
had_user=0
getent passwd ess >/dev/null && had_user=1
had_ui_users=0
getent passwd ess-ui >/dev/null && had_ui_users=1
getent passwd ess-kiosk >/dev/null && had_ui_users=1
cleanup() { dpkg -P ess-agent >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

# apt resolves the dependencies and waits for the dpkg lock (others install
# on this machine too)
check "apt-get install ./$(basename "$deb")" apt_get install "$(readlink -f "$deb")"
check "essd runs" /usr/bin/essd --version
check "the packaged configuration passes essd check" /usr/bin/essd check -c /etc/ess/essd.conf
uid=$(id -u ess 2>/dev/null || echo none)
if [ "$uid" != none ] && [ "$uid" -lt 1000 ]; then ok "system user ess (uid $uid)"; else not_ok "system user ess"; fi
check "group ess" getent group ess
check "/var/lib/ess owned by ess, 0700" test "$(stat -c '%U %a' /var/lib/ess)" = "ess 700"
conffiles=$(dpkg-query -W -f='${Conffiles}' ess-agent)
case "$conffiles" in
*/etc/ess/essd.conf*/etc/ess/gpsd* | */etc/ess/gpsd*/etc/ess/essd.conf*) ok "conffiles: /etc/ess/essd.conf, /etc/ess/gpsd" ;;
*) not_ok "conffiles: /etc/ess/essd.conf, /etc/ess/gpsd" ;;
esac
check "essd.service enabled" test -L /etc/systemd/system/multi-user.target.wants/essd.service
check "ess-ui.service enabled" test -L /etc/systemd/system/multi-user.target.wants/ess-ui.service
check "ess-ui installed" test -x /usr/bin/ess-ui
check "the kiosk launcher installed" test -x /usr/lib/ess-agent/ess-kiosk
check "ess-kiosk.service installed" test -f /lib/systemd/system/ess-kiosk.service
# the touch UI's users: ess-ui serves, ess-kiosk (group ess-kiosk) shows it
for u in ess-ui ess-kiosk; do
	uid=$(id -u "$u" 2>/dev/null || echo none)
	if [ "$uid" != none ] && [ "$uid" -lt 1000 ]; then ok "system user $u (uid $uid)"; else not_ok "system user $u"; fi
done
check "ess-kiosk's group is ess-kiosk" test "$(id -gn ess-kiosk 2>/dev/null)" = ess-kiosk
check "ess-ui is not in group ess-kiosk (the unit's Group= gives its files that group)" \
	sh -c '! id -Gn ess-ui | tr " " "\n" | grep -qx ess-kiosk'
# the token file as the units make it: ess-ui (Group=ess-kiosk) writes it
# 0640; ess-kiosk reads it, another user cannot
tdir=$(mktemp -d /tmp/ess-pkg-ui-XXXXXX)
chown ess-ui:ess-kiosk "$tdir"
chmod 0750 "$tdir"
runuser -u ess-ui -g ess-kiosk -- /usr/bin/ess-ui -s "$tdir/none.sock" --listen 127.0.0.1:0 \
	--token-file "$tdir/token" --token-mode 0640 --port-file "$tdir/port" >"$tdir/ui.log" 2>&1 &
ui_pid=$!
i=0
while [ ! -s "$tdir/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "ess-ui as user ess-ui writes its token, group ess-kiosk, 0640" \
	test "$(stat -c '%U %G %a' "$tdir/token" 2>/dev/null)" = "ess-ui ess-kiosk 640"
check "user ess-kiosk can read the token" runuser -u ess-kiosk -- head -c 64 "$tdir/token"
check "user nobody cannot read the token" sh -c "! runuser -u nobody -- head -c 64 '$tdir/token'"
kill -TERM "$ui_pid" 2>/dev/null
wait "$ui_pid" 2>/dev/null
rm -rf "$tdir"
check "ess-firstboot.service enabled" test -L /etc/systemd/system/multi-user.target.wants/ess-firstboot.service
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify --man=no /lib/systemd/system/essd.service \
		/lib/systemd/system/ess-firstboot.service /lib/systemd/system/ess-ui.service \
		/lib/systemd/system/ess-kiosk.service 2>&1)
	if [ -z "$out" ]; then ok "systemd-analyze verify of the installed units"; else
		not_ok "systemd-analyze verify of the installed units"
		echo "$out" | sed 's/^/# /'
	fi
fi
check "the man page" test -f /usr/share/man/man8/essd.8.gz
# the agent as its own user: the self-test runs and reports, in JSON, that
# this machine is not provisioned (the exit status says it failed)
json=$(runuser -u ess -- /usr/bin/essd selftest -c /etc/ess/essd.conf --no-gps --json 2>/dev/null)
rc=$?
case "$json" in
*'"ok":false'*'"name":"keystore","status":"fail"'*) [ $rc = 1 ] && ok "selftest as user ess: not provisioned, exit 1" || not_ok "selftest exit status $rc" ;;
*) not_ok "selftest as user ess: $json" ;;
esac

# an edited conffile survives removal; the binaries do not
echo "# edited by the technician" >>/etc/ess/essd.conf
check "dpkg -r ess-agent" dpkg -r ess-agent
check "binaries removed" test ! -e /usr/bin/essd
check "ess-ui and the kiosk launcher removed" sh -c 'test ! -e /usr/bin/ess-ui && test ! -e /usr/lib/ess-agent/ess-kiosk'
check "edited configuration kept after remove" grep -q 'edited by the technician' /etc/ess/essd.conf
check "dpkg -P ess-agent" dpkg -P ess-agent
check "configuration gone after purge" test ! -e /etc/ess/essd.conf
check "state gone after purge" test ! -e /var/lib/ess
if [ $had_user = 0 ]; then check "user ess removed by purge" sh -c '! getent passwd ess'; fi
if [ $had_ui_users = 0 ]; then
	check "users ess-ui and ess-kiosk removed by purge" sh -c '! getent passwd ess-ui && ! getent passwd ess-kiosk'
	check "group ess-kiosk removed by purge" sh -c '! getent group ess-kiosk'
fi
echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ $failed = 0 ]
