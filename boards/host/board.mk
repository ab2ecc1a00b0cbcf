# A development host (x86_64): native build, fakes for the hardware, used by
# the demo and the tests. The package installs essd-system.conf (paths under
# /var/lib/ess); essd.conf is the development file under /tmp.
DEB_ARCH         := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
PACKAGE_CONF     := boards/host/essd-system.conf
BOARD_FEATURES   := gpsd
