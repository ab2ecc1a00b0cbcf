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
# run from the top of the tree, by hand or sourced by ui_e2e.sh
. tests/lib/stack-common.sh

ui_stack_stop() {
	stop_pid "$ui_pid"
	stop_pid "$essd_pid"
	stop_pid "$srv_pid"
	stop_gps "$gps_pid"
	ui_pid= essd_pid= srv_pid= gps_pid=
}
ui_admin() { # METHOD PATH [BODY]
	curl -s -X "$1" -H "Authorization: Bearer $UI_ADMIN" -H 'Content-Type: application/json' \
		${3:+-d "$3"} "http://127.0.0.1:$srv_port$2"
}
ui_start_server() {
	"$build/ess-refserver" --listen "127.0.0.1:$srv_port" --base /api --db "$dir/server.db" \
		--key "$dir/server.key" --admin-token "$UI_ADMIN" >>"$dir/server.log" 2>&1 &
	srv_pid=$!
	wait_for 10 ui_admin GET /admin/health
}
# ui_stack_start BUILD DIR: sets srv_port, ui_port, ui_token, device; 0 or 1
ui_stack_start() {
	build=$1
	dir=$2
	srv_port=$(free_port)
	gps_port=$(free_port)
	ui_start_server || { echo "# the reference server did not start"; return 1; }
	"$build/tools/nmeagen" --seed 11 --seconds 900 --start now >"$dir/drive.nmea" || return 1
	start_gps "$gps_port" "$dir/drive.nmea" 0.2 "$dir/gpsfake.log" ||
		{ echo "# gpsd never got gpsfake's receiver"; return 1; }
	# commands (lock) ride on the heartbeat: the shortest the contract allows
	ui_admin PUT /admin/config "$(ui_admin GET /admin/config |
		python3 -c 'import sys,json; c=json.load(sys.stdin); c["heartbeat_interval_s"]=10; print(json.dumps(c))')" >/dev/null
	ui_admin POST /admin/tokens "{\"unit\":\"$UI_UNIT\",\"token\":\"ui-enroll-1\"}" >/dev/null
	echo "SN-UI-0001" >"$dir/serial"
	essd_conf "$dir" "$srv_port" "$gps_port" 8
	mkdir -m 700 "$dir/store"
	"$build/essd" provision -c "$dir/essd.conf" --token ui-enroll-1 >"$dir/provision.log" 2>&1 ||
		{ echo "# provisioning failed:"; sed "s/^/#   /" "$dir/provision.log"; return 1; }
	device=$(ui_admin GET /admin/devices | python3 -c 'import sys,json; print(json.load(sys.stdin)["devices"][0]["device_id"])')
	"$build/essd" run -c "$dir/essd.conf" >"$dir/essd.log" 2>&1 &
	essd_pid=$!
	wait_for 10 "$build/essctl" -s "$dir/essd.sock" status || { echo "# essd did not start"; return 1; }
	"$build/ess-ui" -s "$dir/essd.sock" --listen 127.0.0.1:0 --token-file "$dir/ui.token" \
		--port-file "$dir/ui.port" >"$dir/ui.log" 2>&1 &
	ui_pid=$!
	wait_for 10 test -s "$dir/ui.port" || { echo "# ess-ui did not start"; return 1; }
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
