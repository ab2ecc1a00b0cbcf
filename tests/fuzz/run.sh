#!/bin/sh
# Runs every fuzzer for SECONDS on its seed corpus (tests/fuzz/corpus/NAME)
# plus a scratch corpus, and prints TAP: one line per fuzzer. A crash leaves
# its input in build/.../fuzz-crashes/NAME/ — turn it into a regression seed.
set -u
build=${1:?usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS}
seconds=${2:-10}
n=0
fail=0
for f in "$build"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	n=$((n + 1))
	seeds="tests/fuzz/corpus/$name"
	work="$build/fuzz-corpus/$name"
	crashes="$build/fuzz-crashes/$name"
	mkdir -p "$work" "$crashes" "$seeds"
	log="$build/fuzz-$name.log"
	# -rss_limit_mb keeps a leak or blow-up from taking the machine
	if "$f" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 \
		-artifact_prefix="$crashes/" "$work" "$seeds" >"$log" 2>&1; then
		runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1)
		execs=$(grep -Eo '#[0-9]+' "$log" | tail -1)
		echo "ok $n - $name: ${seconds}s, ${execs#\#} inputs, no crash"
	else
		fail=$((fail + 1))
		echo "not ok $n - $name: crash, see $log and $crashes"
		grep -E 'ERROR|SUMMARY' "$log" | head -5 | sed 's/^/# /'
	fi
done
[ "$n" -gt 0 ] || { echo "not ok - no fuzzer built"; exit 1; }
[ "$fail" -eq 0 ]
