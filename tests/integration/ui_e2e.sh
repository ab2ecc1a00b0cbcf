#!/bin/sh
# The touch UI end to end: ess-ui in Debian's headless Chromium (driven by
# playwright-core, tests/ui/) against the real refserver, gpsd via
# gpsfake, essd and ess-ui on loopback. TAP from tests/ui/e2e.mjs.
# Screenshots go to $ESS_BUILD/artifacts/. Every process started here is
# stopped by pid, on failure too.
set -u
build=$(cd "${ESS_BUILD:-build/host}" && pwd)
here=$(pwd)
for need in node npm /usr/bin/chromium gpsfake; do
	command -v "$need" >/dev/null 2>&1 ||
		{ echo "not ok 1 - $need is missing (boards/deps.sh installs it)"; exit 1; }
done
if [ ! -d tests/ui/node_modules/playwright-core ]; then
	# the lock pins playwright-core; it brings no browser (Debian's is used)
	(cd tests/ui && npm ci --no-audit --no-fund >/dev/null 2>&1) ||
		{ echo "not ok 1 - npm ci in tests/ui failed"; exit 1; }
fi
. "$here/tests/ui/stack.sh"
dir=$(mktemp -d /tmp/ess-ui-e2e-XXXXXX)
cleanup() {
	ui_stack_stop
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! ui_stack_start "$build" "$dir"; then
	echo "not ok 1 - the test stack did not start"
	for f in "$dir"/*.log; do [ -f "$f" ] && { echo "# --- $f"; tail -5 "$f" | sed 's/^/# /'; }; done
	exit 1
fi
UI_PORT=$ui_port UI_TOKEN=$ui_token SRV_PORT=$srv_port SRV_PID=$srv_pid ESSD_PID=$essd_pid GPS_PGID=$gps_pid ADMIN=$UI_ADMIN \
	DEVICE=$device UNIT=$UI_UNIT ART="$build/artifacts" ESSCTL="$build/essctl" SOCK="$dir/essd.sock" \
	timeout -k 5 150 node tests/ui/e2e.mjs
rc=$?
# ess-ui stops cleanly on SIGTERM (under SANITIZE=1: no leak, no error)
kill -TERM "$ui_pid" 2>/dev/null
wait "$ui_pid"
ui_rc=$?
ui_pid=
if [ "$ui_rc" -eq 0 ] && ! grep -q 'Sanitizer' "$dir/ui.log"; then
	echo "ok - ess-ui stopped cleanly on SIGTERM"
else
	echo "not ok - ess-ui exited with $ui_rc"
	rc=1
fi
if [ "$rc" -ne 0 ]; then
	for f in "$dir"/ui.log "$dir"/essd.log; do echo "# --- $f"; tail -15 "$f" | sed 's/^/# /'; done
fi
exit "$rc"
