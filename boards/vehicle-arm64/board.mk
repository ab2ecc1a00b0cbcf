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
# SYSROOT=build/vehicle-arm64-sysroot/root (boards/sysroot.sh vehicle-arm64): the target's
# libraries unpacked privately instead of installed with multiarch (when the
# mirror's foreign index lags the host's versions). The C library is the
# cross toolchain's; tests run with its loader named explicitly, its libc
# first (libc6:ARCH in the sysroot is only for dpkg-shlibdeps; mixing the
# two glibc builds crashes forked children).
ifneq ($(SYSROOT),)
override SYSROOT   := $(abspath $(SYSROOT))
PKG_CONFIG         := PKG_CONFIG_SYSROOT_DIR=$(SYSROOT) PKG_CONFIG_LIBDIR=$(SYSROOT)/usr/lib/aarch64-linux-gnu/pkgconfig:$(SYSROOT)/usr/share/pkgconfig pkg-config
# -isystem: warnings about library headers are not ours (gps.h declares a
# global enumerator p), as for the host's /usr/include
BOARD_CFLAGS       += -isystem $(SYSROOT)/usr/include -isystem $(SYSROOT)/usr/include/aarch64-linux-gnu
SYSROOT_LIBS       := $(SYSROOT)/usr/lib/aarch64-linux-gnu:$(SYSROOT)/lib/aarch64-linux-gnu
LDFLAGS            += -L$(SYSROOT)/usr/lib/aarch64-linux-gnu -L$(SYSROOT)/lib/aarch64-linux-gnu \
                      -Wl,-rpath-link,$(SYSROOT)/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,$(SYSROOT)/lib/aarch64-linux-gnu
TEST_WRAPPER       := qemu-aarch64 /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 --library-path /usr/aarch64-linux-gnu/lib:$(SYSROOT_LIBS)
endif
