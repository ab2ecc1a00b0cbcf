#!/bin/sh
# make soak: the long forms of the fault tests, ending with one table.
#   ESS_SOAK_KILLS (default 10000)   kill -9 of a writer mid-append
#   ESS_SOAK_CUTS  (default 5000)    power cuts through the test VFS
#   ESS_SOAK_ESSD_KILLS (default 10000)  essd SIGKILLed mid-action/mid-upload
#   ESS_SOAK_NET_SCALE (default 5)        network chaos scenarios' length, x
#   ESS_SOAK_BLACKOUT (default 30:120:3)  blackouts UP_S:DOWN_S:CYCLES
#   ESS_SOAK_DISK_ROUNDS (default 8)      fill / free the disk under essd
#   ESS_SOAK_GPS_ROUNDS (default 20)      hostile gpsd rounds
#   ESS_SOAK_ONLY=store|essd              only one half of the table
# Each row: scenario, iterations, lost, doubled, invented, crashes.
set -u
build=${1:?usage: tests/soak.sh BUILD_DIR}
kills=${ESS_SOAK_KILLS:-10000}
cuts=${ESS_SOAK_CUTS:-5000}
essd_kills=${ESS_SOAK_ESSD_KILLS:-10000}
net_scale=${ESS_SOAK_NET_SCALE:-5}
blackout=${ESS_SOAK_BLACKOUT:-30:120:3}
disk_rounds=${ESS_SOAK_DISK_ROUNDS:-8}
gps_rounds=${ESS_SOAK_GPS_ROUNDS:-20}
only=${ESS_SOAK_ONLY:-}
export ESS_BUILD="$build"
out=$(mktemp -d /tmp/ess-soak-XXXXXX)
trap 'rm -rf "$out"' EXIT
export CMOCKA_MESSAGE_OUTPUT=TAP
status=0

if [ "$only" != essd ]; then
	echo "soak: store kill -9 loop, $kills kills"
	ESS_CRASH_KILLS=$kills "$build/tests/test_store_crash" >"$out/crash.log" 2>&1 || status=1
	echo "soak: power cuts, $cuts cuts (plus the NORMAL / OFF / lying-disk controls)"
	ESS_POWERCUT_CUTS=$cuts "$build/tests/test_store_powercut" >"$out/powercut.log" 2>&1 ||
		status=1
fi
if [ "$only" != store ]; then
	echo "soak: essd crash loop, $essd_kills kills (about 0.25 s each)"
	ESS_CHAOS_KILLS=$essd_kills "$build/tests/itest_chaos_crash" >"$out/essd-crash.log" 2>&1 ||
		status=1
	echo "soak: network chaos, scenarios x$net_scale, blackouts $blackout"
	ESS_CHAOS_NET_SCALE=$net_scale ESS_CHAOS_BLACKOUT=$blackout \
		"$build/tests/itest_chaos_net" >"$out/net.log" 2>&1 || status=1
	echo "soak: disk full, $disk_rounds rounds"
	ESS_CHAOS_DISK_ROUNDS=$disk_rounds "$build/tests/itest_chaos_disk" >"$out/disk.log" 2>&1 ||
		status=1
	echo "soak: hostile gpsd, $gps_rounds rounds"
	ESS_CHAOS_GPS_ROUNDS=$gps_rounds "$build/tests/itest_chaos_gps" >"$out/gps.log" 2>&1 ||
		status=1
fi

# "# 500 kills, 37419 confirmed events, all present once" (the test fails,
# and prints its findings, on any loss, duplicate or mismatch)
crash_line=$(grep -sE '^# [0-9]+ kills' "$out/crash.log")
crash_ok=$(grep -sc '^ok ' "$out/crash.log")
full=$(grep -sE '^# FULL: ' "$out/powercut.log")
field() { # field LINE NAME: the number before NAME
	echo "$1" | grep -oE "[0-9]+ $2" | head -1 | cut -d' ' -f1
}

row() { printf '%-34s %10s %8s %8s %9s %8s\n' "$@"; }
# the essd rows: "# NAME: ... N WORD ..." lines printed by the tests
num() { # num LINE WORD: the number before WORD, or the one after it
	v=$(echo "$1" | grep -oE "[0-9]+ $2" | head -1 | cut -d' ' -f1)
	[ -n "$v" ] || v=$(echo "$1" | grep -oE "$2 [0-9]+" | head -1 | sed 's/.* //')
	echo "${v:--}"
}
printf '\n%-34s %10s %8s %8s %9s %8s\n' scenario iterations lost doubled invented crashes
if [ "$only" != essd ]; then
printf '%-34s %10s %8s %8s %9s %8s\n' "store: kill -9 mid-append" \
	"$(field "$crash_line" kills)" "$([ "$crash_ok" -ge 1 ] && echo 0 || echo FAIL)" \
	"$([ "$crash_ok" -ge 1 ] && echo 0 || echo FAIL)" "$([ "$crash_ok" -ge 1 ] && echo 0 || echo FAIL)" \
	"$(grep -c 'AddressSanitizer\|Segmentation' "$out/crash.log")"
printf '%-34s %10s %8s %8s %9s %8s\n' "store: power cut (FULL)" \
	"$(field "$full" cuts)" "$(field "$full" lost)" "$(field "$full" 'seq back')" \
	"$(field "$full" resurrected)" "$(field "$full" corrupt)"
for ctl in NORMAL OFF; do
	l=$(grep -E "^# $ctl \\(control\\): " "$out/powercut.log")
	printf '%-34s %10s %8s %8s %9s %8s\n' "  control: synchronous=$ctl" \
		"$(field "$l" cuts)" "$(field "$l" lost)" "$(field "$l" 'seq back')" \
		"$(field "$l" resurrected)" "$(field "$l" corrupt)"
done
fi
if [ "$only" != store ]; then
	l=$(grep -E '^# crash loop: ' "$out/essd-crash.log")
	row "essd: SIGKILL loop (actions)" "$(num "$l" kills)" "$(num "$l" lost)" \
		"$(num "$l" doubled)" "$(num "$l" invented)" "$(num "$l" crashes)"
	grep -E '^# net: ' "$out/net.log" | while IFS= read -r l; do
		name=$(echo "$l" | sed 's/^# net: \([^,]*\),.*/\1/')
		row "net: $name" "$(num "$l" actions)" "$(num "$l" lost)" "$(num "$l" doubled)" \
			"$(num "$l" invented)" "$(num "$l" crashes)"
	done
	l=$(grep -E '^# disk: ' "$out/disk.log")
	row "essd: disk full (rounds)" "$(num "$l" rounds)" "$(num "$l" lost)" \
		"$(num "$l" doubled)" "$(num "$l" invented)" "$(num "$l" crashes)"
	l=$(grep -E '^# gps: ' "$out/gps.log")
	row "essd: hostile gpsd (lines)" "$(num "$l" 'lines sent')" - "$(num "$l" 'time back')" \
		"$(num "$l" nonsense)" "$(num "$l" crashes)"
fi
echo
echo "(power cut: 'doubled' = seq went back, 'invented' = a delivered event came back,"
echo " 'crashes' = corrupt databases; the controls must find losses, FULL must not."
echo " essd rows: lost = acknowledged actions the server never accepted, doubled ="
echo " accepted twice, invented = accepted but never acknowledged as that event;"
echo " net rows count the actions tried during each scenario; gpsd: doubled = trail"
echo " time going back, invented = a stored fix outside the drive or the test's time)"
if [ "$status" -ne 0 ]; then
	echo "soak: FAILED"
	grep -E '^not ok|^# ' "$out"/*.log | head -20
	exit 1
fi
echo "soak: every invariant held"
