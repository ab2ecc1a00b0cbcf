# In-vehicle terminal: arm64, ignition line, external GNSS on a serial port,
# buzzer, panic button. Cross-built with Debian's cross compiler against the
# arm64 multiarch -dev packages (boards/deps.sh ensure vehicle-arm64).
DEB_ARCH           := arm64
DEB_HOST_MULTIARCH := aarch64-linux-gnu
CROSS_COMPILE      ?= aarch64-linux-gnu-
# $(CROSS_COMPILE)gcc: Debian ships no <triplet>-cc.
CC                 := gcc
# Only the target's .pc files: the host's would hand out x86_64 paths.
PKG_CONFIG         := PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig pkg-config
# Unit tests run under qemu-user, with the target's loader and libraries
# from multiarch (libc6:arm64 comes with the -dev packages). Not with
# -L /usr/aarch64-linux-gnu: qemu 7.2 then hangs in every fork()ed child.
TEST_WRAPPER       := qemu-aarch64
BOARD_FEATURES     := gpsd serial-gnss ignition buzzer panic-button
# Field units get the Debian hardening flags (lintian's hardening checks):
# fortified libc calls, stack protector, full RELRO with immediate binding.
BOARD_CFLAGS       += -D_FORTIFY_SOURCE=2 -fstack-protector-strong
LDFLAGS            += -Wl,-z,relro,-z,now
