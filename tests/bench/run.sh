#!/bin/sh
# Runs every benchmark program and prints what it says. Figures are never
# pass/fail: each prints lines
#   figure <name> <value> <unit> target <op> <value> met|missed
# and "# " lines with the raw numbers. This script exits 0 even when a
# target is missed; a program that fails is reported in a "# " line.
set -u
build=${1:?usage: tests/bench/run.sh BUILD_DIR}
start=$(date +%s)
for b in "$build"/bench/bench_*; do
	[ -x "$b" ] || continue
	name=$(basename "$b")
	echo "# ---- $name"
	t0=$(date +%s)
	"$b"
	rc=$?
	[ "$rc" -ne 0 ] && echo "# $name exited with status $rc"
	echo "# $name took $(($(date +%s) - t0)) s"
done
echo "# bench took $(($(date +%s) - start)) s"
exit 0
