#!/bin/sh
# make soak: the long forms of the fault tests, ending with one table.
#   ESS_SOAK_KILLS (default 10000)   kill -9 of a writer mid-append
#   ESS_SOAK_CUTS  (default 5000)    power cuts through the test VFS
# Each row: scenario, iterations, lost, doubled, invented, crashes.
set -u
build=${1:?usage: tests/soak.sh BUILD_DIR}
kills=${ESS_SOAK_KILLS:-10000}
cuts=${ESS_SOAK_CUTS:-5000}
out=$(mktemp -d /tmp/ess-soak-XXXXXX)
trap 'rm -rf "$out"' EXIT
export CMOCKA_MESSAGE_OUTPUT=TAP
status=0

echo "soak: store kill -9 loop, $kills kills"
ESS_CRASH_KILLS=$kills "$build/tests/test_store_crash" >"$out/crash.log" 2>&1 || status=1
echo "soak: power cuts, $cuts cuts (plus the NORMAL / OFF / lying-disk controls)"
ESS_POWERCUT_CUTS=$cuts "$build/tests/test_store_powercut" >"$out/powercut.log" 2>&1 || status=1

# "# 500 kills, 37419 confirmed events, all present once" (the test fails,
# and prints its findings, on any loss, duplicate or mismatch)
crash_line=$(grep -E '^# [0-9]+ kills' "$out/crash.log")
crash_ok=$(grep -c '^ok ' "$out/crash.log")
full=$(grep -E '^# FULL: ' "$out/powercut.log")
field() { # field LINE NAME: the number before NAME
	echo "$1" | grep -oE "[0-9]+ $2" | head -1 | cut -d' ' -f1
}

printf '\n%-34s %10s %8s %8s %9s %8s\n' scenario iterations lost doubled invented crashes
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
echo
echo "(power cut: 'doubled' = seq went back, 'invented' = a delivered event came back,"
echo " 'crashes' = corrupt databases; the controls must find losses, FULL must not)"
if [ "$status" -ne 0 ]; then
	echo "soak: FAILED"
	grep -E '^not ok|^# ' "$out"/*.log | head -20
	exit 1
fi
echo "soak: every invariant held"
