#!/bin/sh
# Runs every fuzzer for SECONDS on its seed corpus (tests/fuzz/corpus/NAME)
# plus a scratch corpus, prints TAP (one line per fuzzer, for make check's
# runner) and ends with the table make soak prints: scenario, iterations
# (inputs executed), lost / doubled / invented (not what a fuzzer measures:
# "-"), crashes (crash, leak, timeout or out-of-memory artifacts this run).
# A crash leaves its input in build/.../fuzz-crashes/NAME/ — turn it into a
# regression seed (tests/fuzz/corpus/NAME/regression-*) and a test.
set -u
build=${1:?usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS}
seconds=${2:-10}
n=0
fail=0
table=$(mktemp /tmp/ess-fuzz-table-XXXXXX)
trap 'rm -f "$table"' EXIT
for f in "$build"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	n=$((n + 1))
	seeds="tests/fuzz/corpus/$name"
	work="$build/fuzz-corpus/$name"
	crashes="$build/fuzz-crashes/$name"
	mkdir -p "$work" "$crashes" "$seeds"
	log="$build/fuzz-$name.log"
	before=$(find "$crashes" -type f | wc -l)
	# -rss_limit_mb keeps a leak or blow-up from taking the machine
	"$f" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "$work" "$seeds" >"$log" 2>&1
	rc=$?
	found=$(($(find "$crashes" -type f | wc -l) - before))
	runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
	[ -n "$runs" ] || runs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#')
	[ -n "$runs" ] || runs=0
	if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]; then
		echo "ok $n - $name: ${seconds}s, $runs inputs, no crash"
	else
		[ "$found" -gt 0 ] || found=1
		fail=$((fail + 1))
		echo "not ok $n - $name: crash, see $log and $crashes"
		grep -E 'ERROR|SUMMARY' "$log" | head -5 | sed 's/^/# /'
	fi
	printf '%-34s %10s %8s %8s %9s %8s\n' "fuzz: $name (${seconds}s)" "$runs" - - - "$found" >>"$table"
done
[ "$n" -gt 0 ] || { echo "not ok - no fuzzer built"; exit 1; }
printf '\n%-34s %10s %8s %8s %9s %8s\n' scenario iterations lost doubled invented crashes
cat "$table"
echo
[ "$fail" -eq 0 ] && echo "fuzz: no crash" || echo "fuzz: $fail fuzzer(s) crashed"
[ "$fail" -eq 0 ]
