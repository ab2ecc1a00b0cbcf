# Shell helpers shared by the scripts that run the whole agent on loopback
# (tests/demo.sh, tests/ui/stack.sh). Sourced; POSIX sh. Every process is
# stopped by its pid, never by name: others run the same programs here.

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
stop_pid() { # stop_pid PID: TERM, wait up to 3 s, then KILL
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
		sleep 0.2
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
stop_gps() { # stop_gps PID: gpsfake (started by setsid) and its gpsd, the whole group
	[ -n "$1" ] || return 0
	kill -TERM -"$1" 2>/dev/null
	sleep 0.5
	kill -KILL -"$1" 2>/dev/null # gpsfake can outlive SIGTERM
	wait "$1" 2>/dev/null
}
gpsd_has_device() { # gpsd_has_device PORT: a watching client hears of a device within 8 s
	python3 - "$1" <<'PY'
import socket, sys, time
end = time.time() + 8
while time.time() < end:
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(1)
s.sendall(b'?WATCH={"enable":true,"json":true};\n')
buf = b""
while time.time() < end:
    s.settimeout(max(0.1, end - time.time()))
    try:
        d = s.recv(65536)
    except OSError:
        break
    if not d:
        break
    buf = buf[-64:] + d
    if b'"class":"DEVICE",' in buf or b'"class":"TPV"' in buf:
        sys.exit(0)
sys.exit(1)
PY
}
# start_gps PORT NMEA CYCLE LOG: gpsfake (its own session, stopped by
# stop_gps "$gps_pid") replaying NMEA once to a gpsd on PORT; returns once
# gpsd has the fake receiver. gpsfake sometimes leaves its gpsd without it
# for good (seen under load): then it is started again, 3 times at most.
start_gps() {
	for _try in 1 2 3; do
		setsid gpsfake -P "$1" -1 -q -n -c "$3" "$2" >>"$4" 2>&1 &
		gps_pid=$!
		gpsd_has_device "$1" && return 0
		echo "gpsfake on port $1: gpsd never got the receiver; starting it again" >>"$4"
		stop_gps "$gps_pid"
	done
	return 1
}
wait_for() { # wait_for SECONDS COMMAND...: until the command succeeds
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
essd_conf() { # essd_conf DIR SERVER_PORT GPS_PORT REQUEST_TIMEOUT_S: writes DIR/essd.conf
	cat >"$1/essd.conf" <<CONF
[log]
level = info
[store]
dir = $1/store
position_flush_s = 2
[keystore]
key_file = $1/kek
[server]
url = http://127.0.0.1:$2/api
long_poll_s = 5
request_timeout_s = $4
[gps]
host = 127.0.0.1
port = $3
interval_s = 1
min_distance_m = 0
active_interval_s = 1
[control]
socket = $1/essd.sock
[device]
serial_file = $1/serial
[heartbeat]
interval_s = 10
CONF
}
