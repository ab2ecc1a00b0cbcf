#!/bin/sh
# Runs every unit test binary and every integration script, counts test cases
# from their TAP output and ends with the one line CI reads:
#   N passed, N failed
# A program that dies without reporting a failure counts as one failure.
set -u
build=${1:?usage: tests/run.sh BUILD_DIR}
logs="$build/test-logs"
mkdir -p "$logs"
passed=0
failed=0
export CMOCKA_MESSAGE_OUTPUT=TAP
export ESS_BUILD="$build"
# tu_rmrf keeps every log and key file of the tests' temporary directories
# here, for the log canary scan that runs last
export ESS_TEST_LOGDIR="$logs/kept" ESS_TEST_SECRETDIR="$logs/secrets"
rm -rf "$ESS_TEST_LOGDIR" "$ESS_TEST_SECRETDIR"
mkdir -p "$ESS_TEST_LOGDIR" "$ESS_TEST_SECRETDIR"
chmod 700 "$ESS_TEST_SECRETDIR"

run_one() {
	name=$1
	shift
	log="$logs/$name.log"
	start=$(date +%s)
	timeout -k 10 "${ESS_TEST_TIMEOUT:-900}" "$@" >"$log" 2>&1
	rc=$?
	ok=$(grep -c '^ok ' "$log")
	bad=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		bad=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then
		bad=1
		echo "not ok - $name reported no test" >>"$log"
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	status=PASS
	[ "$bad" -ne 0 ] && status=FAIL
	printf '%-4s %-32s %4d ok %3d failed  %4ss\n' "$status" "$name" "$ok" "$bad" \
		"$(($(date +%s) - start))"
	if [ "$bad" -ne 0 ]; then
		grep -E '^not ok|^# |ERROR|error' "$log" | head -40 | sed 's/^/    /'
		echo "    (full log: $log)"
	fi
}

# A cross build: ESS_TEST_WRAPPER runs each binary (qemu-user) and
# ESS_UNIT_ONLY=1 leaves out the integration tests, which need the host's
# gpsd, nginx and programs.
wrapper=${ESS_TEST_WRAPPER:-}
unit_only=${ESS_UNIT_ONLY:-0}
for t in "$build"/tests/test_* "$build"/tests/itest_*; do
	[ -x "$t" ] || continue
	case "$(basename "$t")" in itest_*) [ "$unit_only" = 1 ] && continue ;; esac
	# shellcheck disable=SC2086
	run_one "$(basename "$t")" $wrapper "$t"
done
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	[ "$unit_only" = 1 ] && continue
	run_one "$(basename "$t" .sh)" sh "$t"
done
# last: no canary (personal datum, token, key) in any log of the suite
run_one log_canary_scan python3 tests/log_canary_scan.py "$logs"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
