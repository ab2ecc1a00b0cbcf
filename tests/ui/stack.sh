#!/bin/sh
# The touch UI's test stack, on loopback: the reference server (dispatch),
# real gpsd through gpsfake (a Bangkok drive, for distance and bearing),
# essd provisioned and running, and ess-ui. Sourced by
# tests/integration/ui_e2e.sh and usable by hand:
#   sh tests/ui/stack.sh build/host     # starts it, prints the URL, waits for ^C
# Every process is stopped by pid (gpsfake's process group with a SIGKILL
# fallback); nothing is ever killed by name.
UI_UNIT=BKK-UI-01
UI_ADMIN=ui-e2e-admin-token-0001
srv_pid= essd_pid= gps_pid= ui_pid=

ui_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ui_stop_pid() { # pid: TERM, wait up to 3 s, then KILL
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
		sleep 0.2
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
ui_stack_stop() {
	ui_stop_pid "$ui_pid"
	ui_stop_pid "$essd_pid"
	ui_stop_pid "$srv_pid"
	if [ -n "$gps_pid" ]; then # gpsfake and its gpsd: the whole group, by its pid
		kill -TERM -"$gps_pid" 2>/dev/null
		sleep 0.5
		kill -KILL -"$gps_pid" 2>/dev/null
		wait "$gps_pid" 2>/dev/null
	fi
	ui_pid= essd_pid= srv_pid= gps_pid=
}
ui_wait_for() { # SECONDS COMMAND...
	_t=$1
	shift
	_i=0
	while [ "$_i" -lt $((_t * 5)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		_i=$((_i + 1))
	done
	return 1
}
ui_admin() { # METHOD PATH [BODY]
	curl -s -X "$1" -H "Authorization: Bearer $UI_ADMIN" -H 'Content-Type: application/json' \
		${3:+-d "$3"} "http://127.0.0.1:$srv_port$2"
}
ui_start_server() {
	"$build/ess-refserver" --listen "127.0.0.1:$srv_port" --base /api --db "$dir/server.db" \
		--key "$dir/server.key" --admin-token "$UI_ADMIN" >>"$dir/server.log" 2>&1 &
	srv_pid=$!
	ui_wait_for 10 ui_admin GET /admin/health
}
# ui_stack_start BUILD DIR: sets srv_port, ui_port, ui_token, device; 0 or 1
ui_stack_start() {
	build=$1
	dir=$2
	srv_port=$(ui_free_port)
	gps_port=$(ui_free_port)
	ui_start_server || { echo "# the reference server did not start"; return 1; }
	"$build/tools/nmeagen" --seed 11 --seconds 900 --start now >"$dir/drive.nmea" || return 1
	setsid gpsfake -P "$gps_port" -1 -q -n -c 0.2 "$dir/drive.nmea" >"$dir/gpsfake.log" 2>&1 &
	gps_pid=$!
	# commands (lock) ride on the heartbeat: the shortest the contract allows
	ui_admin PUT /admin/config "$(ui_admin GET /admin/config |
		python3 -c 'import sys,json; c=json.load(sys.stdin); c["heartbeat_interval_s"]=10; print(json.dumps(c))')" >/dev/null
	ui_admin POST /admin/tokens "{\"unit\":\"$UI_UNIT\",\"token\":\"ui-enroll-1\"}" >/dev/null
	echo "SN-UI-0001" >"$dir/serial"
	cat >"$dir/essd.conf" <<CONF
[log]
level = info
[store]
dir = $dir/store
position_flush_s = 2
[keystore]
key_file = $dir/kek
[server]
url = http://127.0.0.1:$srv_port/api
long_poll_s = 5
request_timeout_s = 8
[gps]
host = 127.0.0.1
port = $gps_port
interval_s = 1
min_distance_m = 0
active_interval_s = 1
[control]
socket = $dir/essd.sock
[device]
serial_file = $dir/serial
[heartbeat]
interval_s = 10
CONF
	mkdir -m 700 "$dir/store"
	"$build/essd" provision -c "$dir/essd.conf" --token ui-enroll-1 >"$dir/provision.log" 2>&1 ||
		{ echo "# provisioning failed:"; sed "s/^/#   /" "$dir/provision.log"; return 1; }
	device=$(ui_admin GET /admin/devices | python3 -c 'import sys,json; print(json.load(sys.stdin)["devices"][0]["device_id"])')
	"$build/essd" run -c "$dir/essd.conf" >"$dir/essd.log" 2>&1 &
	essd_pid=$!
	ui_wait_for 10 "$build/essctl" -s "$dir/essd.sock" status || { echo "# essd did not start"; return 1; }
	"$build/ess-ui" -s "$dir/essd.sock" --listen 127.0.0.1:0 --token-file "$dir/ui.token" \
		--port-file "$dir/ui.port" >"$dir/ui.log" 2>&1 &
	ui_pid=$!
	ui_wait_for 10 test -s "$dir/ui.port" || { echo "# ess-ui did not start"; return 1; }
	ui_port=$(cat "$dir/ui.port")
	ui_token=$(cat "$dir/ui.token")
	return 0
}

if [ "${0##*/}" = stack.sh ]; then # run by hand
	set -u
	build=$(cd "${1:-build/host}" && pwd)
	dir=$(mktemp -d /tmp/ess-ui-stack-XXXXXX)
	trap 'ui_stack_stop; rm -rf "$dir"' EXIT
	trap 'exit 130' INT TERM
	ui_stack_start "$build" "$dir" || exit 1
	echo "UI:        http://127.0.0.1:$ui_port/#token=$ui_token"
	echo "dispatch:  http://127.0.0.1:$srv_port (admin token $UI_ADMIN), device $device"
	echo "essctl:    $build/essctl -s $dir/essd.sock list"
	echo "files in $dir; ^C stops everything"
	while :; do sleep 3600; done
fi
