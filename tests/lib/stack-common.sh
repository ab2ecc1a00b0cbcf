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
