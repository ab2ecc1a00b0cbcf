#!/bin/sh
# make demo: the whole agent, end to end, on loopback, checked.
#
# The reference server plays the central ESS; real gpsd (through gpsfake)
# replays a drive through Bangkok; essd is provisioned and runs; dispatch
# creates incidents (one silent); the responder acts with essctl; the server
# goes away; more actions and positions happen offline (queued, encrypted);
# the server returns; the queue drains. The verdict compares the server's
# record with the responder's actions: exit 0 only if every action reached
# the server exactly once. Every process started here is stopped by pid.
set -u
build=${1:?usage: tests/demo.sh BUILD_DIR}
build=$(cd "$build" && pwd)
dir=$(mktemp -d /tmp/ess-demo-XXXXXX)
start=$(date +%s.%N)
. "$(dirname "$0")/lib/stack-common.sh"
srv_pid= essd_pid= gps_pid= ui_pid=
UNIT=BKK-RESP-04
TOKEN=demo-admin-token-0001

say() {
	printf '[%6s s] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN{printf "%.1f", a-b}')" "$*"
}
cleanup() {
	stop_pid "$ui_pid"
	stop_pid "$essd_pid"
	stop_pid "$srv_pid"
	stop_gps "$gps_pid"
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
	say "FAILED: $*"
	for f in "$dir"/*.log; do
		[ -f "$f" ] && { echo "--- $f (last lines)"; tail -15 "$f"; }
	done
	exit 1
}
json() { # json EXPR: evaluates a Python expression over the JSON on stdin (as j)
	python3 -c "import sys,json; j=json.load(sys.stdin); print($1)"
}
admin() { # admin METHOD PATH [BODY]
	curl -s -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		${3:+-d "$3"} "http://127.0.0.1:$port$2"
}
essctl() {
	"$build/essctl" -s "$dir/essd.sock" "$@"
}
start_server() {
	"$build/ess-refserver" --listen "127.0.0.1:$port" --base /api --db "$dir/server.db" \
		--key "$dir/server.key" --admin-token "$TOKEN" >>"$dir/server.log" 2>&1 &
	srv_pid=$!
	wait_for 10 admin GET /admin/health || fail "the reference server did not start"
}
record() { # record LABEL JSON-ANSWER: keep the event id of a confirmed action
	eid=$(echo "$2" | json 'j.get("result",j).get("event_id","")' 2>/dev/null)
	[ -n "$eid" ] || fail "essctl did not confirm: $1 ($2)"
	echo "$eid $1" >>"$dir/actions"
	say "responder: $1 -> saved on the device, event $eid"
}

echo "ESS field agent — demo: a responder's shift in Bangkok, online and off"
echo
port=$(free_port)
gps_port=$(free_port)
: >"$dir/actions"

say "dispatch: reference ESS server starts on 127.0.0.1:$port"
start_server

say "gps: real gpsd via gpsfake replays a generated drive (Victory Monument -> Sukhumvit)"
"$build/tools/nmeagen" --seed 7 --seconds 900 --start now >"$dir/drive.nmea" ||
	fail "nmeagen"
start_gps "$gps_port" "$dir/drive.nmea" 0.1 "$dir/gpsfake.log" ||
	fail "gpsd never got gpsfake's receiver"

say "technician: provisions the handheld (device key, enrollment, sealed identity)"
admin POST /admin/tokens "{\"unit\":\"$UNIT\",\"token\":\"demo-enroll-1\"}" >/dev/null
echo "SN-DEMO-0001" >"$dir/serial"
essd_conf "$dir" "$port" "$gps_port" 15
mkdir -m 700 "$dir/store"
"$build/essd" provision -c "$dir/essd.conf" --token demo-enroll-1 >"$dir/provision.log" 2>&1 ||
	fail "provisioning"
device=$(admin GET /admin/devices | json 'j["devices"][0]["device_id"]')
say "technician: enrolled as device $device of unit $UNIT"

"$build/essd" run -c "$dir/essd.conf" >"$dir/essd.log" 2>&1 &
essd_pid=$!
wait_for 10 essctl status || fail "essd did not start"
say "device: essd runs (one event loop: gpsd, the server, the control socket)"
if [ -x "$build/ess-ui" ]; then # the responder's screen, for a newcomer to watch
	"$build/ess-ui" -s "$dir/essd.sock" --listen 127.0.0.1:0 --token-file "$dir/ui.token" \
		--port-file "$dir/ui.port" >"$dir/ui.log" 2>&1 &
	ui_pid=$!
	if wait_for 10 test -s "$dir/ui.port"; then
		say "device: the touch UI (ess-ui) — open in a browser on this machine to watch:"
		echo "            http://127.0.0.1:$(cat "$dir/ui.port")/#token=$(cat "$dir/ui.token")"
		[ -n "${ESS_DEMO_PAUSE:-}" ] && { say "waiting ${ESS_DEMO_PAUSE} s for you to open it"; sleep "$ESS_DEMO_PAUSE"; }
	else
		say "device: the touch UI did not start (see $dir/ui.log); going on without it"
	fi
fi

say "dispatch: three incidents for $UNIT, one of them SILENT"
admin POST /admin/incidents "{\"id\":\"BKK-0101\",\"unit\":\"$UNIT\",\"category\":\"confinement\",\"priority\":1,\"silent\":true,\"location\":{\"lat\":13.7465,\"lon\":100.5348,\"accuracy_m\":12},\"address\":\"ซอยสุขุมวิท 11\",\"summary\":\"Child (9) locked in a room; texts only\",\"reporter\":{\"name\":\"Somchai Jaidee\",\"phone\":\"081-234-5678\",\"contact_ok\":false},\"subjects\":[{\"role\":\"victim\",\"age_group\":\"child\",\"notes\":\"ไม่สามารถพูดได้\"}]}" >/dev/null
admin POST /admin/incidents "{\"id\":\"BKK-0102\",\"unit\":\"$UNIT\",\"category\":\"assault_threat\",\"priority\":2,\"silent\":false,\"location\":{\"lat\":13.7563,\"lon\":100.5018,\"accuracy_m\":8},\"summary\":\"Neighbour threatening an elderly woman\",\"reporter\":{\"name\":\"มาลี สุขใจ\",\"phone\":\"089-765-4321\"}}" >/dev/null
admin POST /admin/incidents "{\"id\":\"BKK-0103\",\"unit\":\"$UNIT\",\"category\":\"deranged_person\",\"priority\":2,\"silent\":false,\"location\":{\"lat\":13.7279,\"lon\":100.5241,\"accuracy_m\":20},\"summary\":\"Man with a knife outside a school\"}" >/dev/null
wait_for 15 sh -c "'$build/essctl' -s '$dir/essd.sock' --json list | grep -q BKK-0103" ||
	fail "the incidents did not reach the device"
say "device: 3 incidents received, verified and stored encrypted (receipts queued)"
echo
essctl list | sed 's/^/            /'
echo
essctl show BKK-0101 | sed 's/^/            /'
echo

record "acknowledge BKK-0101" "$(essctl --json ack BKK-0101)"
record "en_route BKK-0101" "$(essctl --json set BKK-0101 en_route)"
record "acknowledge BKK-0102" "$(essctl --json ack BKK-0102)"
wait_for 15 sh -c "'$build/essctl' -s '$dir/essd.sock' --json status | python3 -c 'import sys,json; j=json.load(sys.stdin); r=j.get(\"result\",j); sys.exit(0 if r[\"queue\"][\"events\"]==0 else 1)'" ||
	fail "the first actions did not drain"
say "device: online, queue empty"

say "network: the server goes away (coverage lost in the soi)"
stop_pid "$srv_pid"
srv_pid=
record "on_scene BKK-0101" "$(essctl --json set BKK-0101 on_scene)"
record "note BKK-0101" "$(essctl --json note BKK-0101 'Somchai Jaidee let us in; child safe, ถึงแล้ว')"
record "resolved BKK-0101" "$(essctl --json set BKK-0101 resolved --note 'child with grandmother; referred to shelter')"
record "declined BKK-0103" "$(essctl --json set BKK-0103 declined --note 'police unit closer')"
if essctl set BKK-0101 en_route >/dev/null 2>&1; then
	fail "a forbidden transition (resolved -> en_route) was accepted"
fi
say "responder: resolved -> en_route refused on the device (the contract's rules)"
sleep 8 # the drive goes on, offline
essctl status | sed 's/^/            /'
hits=0
for needle in Somchai 081-234-5678 "มาลี" "locked in a room" "ถึงแล้ว" 13.7465; do
	for f in "$dir"/store/ess.db "$dir"/store/ess.db-wal; do
		[ -f "$f" ] && grep -c -a -F "$needle" "$f" >/dev/null 2>&1 && hits=$((hits + 1))
	done
done
say "thief: greps the device's database and WAL for names, phones, Thai text, coordinates: $hits hits"
[ "$hits" -eq 0 ] || fail "personal data readable on disk"

say "network: the server is back"
start_server
wait_for 60 sh -c "'$build/essctl' -s '$dir/essd.sock' --json status | python3 -c 'import sys,json; j=json.load(sys.stdin); r=j.get(\"result\",j); sys.exit(0 if r[\"queue\"][\"events\"]==0 else 1)'" ||
	fail "the queue did not drain"
say "device: queue drained"
wait_for 40 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$port/admin/devices/$device/positions | grep -q '\[\['" ||
	fail "the GPS trail did not reach the server"
say "device: the trail gathered offline is on the server"
echo

say "verdict: the server's record against the responder's actions"
admin GET "/admin/devices/$device/events" >"$dir/server-events.json"
fixes=$(admin GET "/admin/devices/$device/positions" | json 'len(j["fixes"])')
python3 - "$dir/actions" "$dir/server-events.json" "$fixes" <<'PY'
import json, sys
actions = [l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines() if l]
events = json.load(open(sys.argv[2]))["events"]
accepted = {}
for e in events:
    if e["result"] == "accepted":
        eid = e["event"]["event_id"]
        accepted[eid] = accepted.get(eid, 0) + 1
ok = True
for eid, label in actions:
    n = accepted.get(eid, 0)
    mark = "OK  " if n == 1 else "FAIL"
    if n != 1:
        ok = False
    print(f"            {mark} {label:<24} accepted {n} time(s)")
receipts = sum(1 for e in events if e["event"]["type"] == "receipt" and e["result"] == "accepted")
dups = sum(1 for e in events if e["result"] == "duplicate")
seqs = [e["event"]["seq"] for e in events if e["result"] == "accepted"]
print(f"            receipts accepted: {receipts}; resends answered 'duplicate': {dups}")
print(f"            GPS fixes on the server: {sys.argv[3]}")
if len(seqs) != len(set(seqs)):
    print("            FAIL a seq was accepted twice"); ok = False
if int(sys.argv[3]) == 0:
    print("            FAIL no position reached the server"); ok = False
sys.exit(0 if ok else 1)
PY
verdict=$?
echo
if [ "$verdict" -eq 0 ]; then
	say "verdict: every action reached the server exactly once"
else
	fail "the server's record does not match the responder's actions"
fi
