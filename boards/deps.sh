#!/bin/sh
# Installs (or checks for) the Debian packages that building, testing and the
# demo need. "deps.sh check" only reports; "deps.sh ensure" installs what is
# missing when run as root and otherwise prints the command to run.
set -eu

# chromium, fonts-thai-tlwg, nodejs: the touch UI's browser test (tests/ui/; npm
# comes with the machine's nodejs, playwright-core from tests/ui/package-lock.json).
PACKAGES="build-essential pkg-config clang clang-format
libsqlite3-dev sqlite3 libcurl4-openssl-dev libgps-dev libcjson-dev
libsodium-dev libcmocka-dev libmicrohttpd-dev libsystemd-dev zlib1g-dev
gpsd gpsd-clients python3 curl util-linux nginx-light openssl
chromium fonts-thai-tlwg nodejs"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done

case "${1:-ensure}" in
check)
	[ -z "$missing" ] && exit 0
	echo "missing Debian packages:$missing" >&2
	exit 1 ;;
ensure)
	[ -z "$missing" ] && exit 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing Debian packages:$missing" >&2
		echo "run as root:  apt-get update && apt-get install -y$missing" >&2
		exit 1
	fi
	echo "installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing ;;
*)
	echo "usage: $0 [check|ensure]" >&2
	exit 2 ;;
esac
