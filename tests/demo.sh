#!/bin/sh
# make demo: what the agent can do today, end to end, checked.
set -u
build=${1:?usage: tests/demo.sh BUILD_DIR}
dir=$(mktemp -d /tmp/ess-demo-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
echo "ESS field agent demo — the encrypted offline store"
echo "(the full demo with the reference server, gpsd and essd arrives with the daemon)"
echo
"$build/demo/demo_store" "$dir"
