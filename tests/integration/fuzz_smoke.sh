#!/bin/sh
# make check's short run of every fuzzer (make fuzz runs them long).
set -u
make -s fuzz-build >/dev/null 2>&1 || { echo "not ok - fuzzers do not build (make fuzz-build)"; exit 1; }
exec tests/fuzz/run.sh build/host-fuzz "${ESS_FUZZ_SECONDS:-8}"
