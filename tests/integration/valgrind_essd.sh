#!/bin/sh
# make check's short valgrind run: essd (offline start, SIGHUP, SIGTERM,
# restart and drain; hostile control-socket requests) under valgrind
# --leak-check=full, driven by the control socket and the reference server;
# any valgrind error, any leak or an unclean exit fails (itest_essd,
# ESS_VALGRIND=short). make valgrind runs every essd scenario so.
# valgrind cannot run ASan binaries: under SANITIZE=1 this uses the plain
# build (which make check SANITIZE=1 runs after make check in CI).
set -u
build=${ESS_BUILD:-build/host}
case "$build" in
*-san) build=${build%-san} ;;
esac
command -v valgrind >/dev/null 2>&1 || { echo "not ok - valgrind is not installed (boards/deps.sh)"; exit 1; }
make -s -j2 BUILD="$build" SANITIZE=0 all "$build/tests/itest_essd" >/dev/null ||
	{ echo "not ok - cannot build $build/tests/itest_essd"; exit 1; }
ESS_BUILD=$build ESS_VALGRIND=short CMOCKA_MESSAGE_OUTPUT=TAP exec "$build/tests/itest_essd"
