# Rugged handheld: 32-bit ARM (armhf), battery, vibration motor, built-in
# GNSS. Cross-built with Debian's cross compiler against the armhf multiarch
# -dev packages (boards/deps.sh ensure handheld-armhf).
# time_t: the Makefile builds everything with -D_TIME_BITS=64; docs/boards.md
# says which library interfaces carry a time_t and how each is handled.
DEB_ARCH           := armhf
DEB_HOST_MULTIARCH := arm-linux-gnueabihf
CROSS_COMPILE      ?= arm-linux-gnueabihf-
# $(CROSS_COMPILE)gcc: Debian ships no <triplet>-cc.
CC                 := gcc
PKG_CONFIG         := PKG_CONFIG_LIBDIR=/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig pkg-config
# Unit tests run under qemu-user, with the target's loader and libraries
# from multiarch (libc6:armhf comes with the -dev packages). Not with
# -L /usr/arm-linux-gnueabihf: qemu 7.2 then hangs in every fork()ed child.
TEST_WRAPPER       := qemu-arm
BOARD_FEATURES     := gpsd builtin-gnss battery vibration panic-button
# libgps's gps_data_t embeds struct timespec. Debian 12's armhf libgps28 was
# built with a 32-bit time_t (the 64-bit time_t transition renamed it with a
# t64 suffix in Debian 13), so hal/gps_gpsd.c alone is compiled with the
# library's time_t; everything else, and every value it passes on, is 64-bit.
LIBGPS_TIME_BITS   := $(shell dpkg-query -W -f='$${Package}\n' 'libgps*:armhf' 2>/dev/null | grep -q 't64$$' && echo 64 || echo 32)
# Field units get the Debian hardening flags (lintian's hardening checks):
# fortified libc calls, stack protector, full RELRO with immediate binding.
BOARD_CFLAGS       += -D_FORTIFY_SOURCE=2 -fstack-protector-strong
LDFLAGS            += -Wl,-z,relro,-z,now
# SYSROOT=build/handheld-armhf-sysroot/root (boards/sysroot.sh handheld-armhf): the target's
# libraries unpacked privately instead of installed with multiarch (when the
# mirror's foreign index lags the host's versions). The C library is the
# cross toolchain's; tests run with its loader named explicitly, its libc
# first (libc6:ARCH in the sysroot is only for dpkg-shlibdeps; mixing the
# two glibc builds crashes forked children).
ifneq ($(SYSROOT),)
override SYSROOT   := $(abspath $(SYSROOT))
PKG_CONFIG         := PKG_CONFIG_SYSROOT_DIR=$(SYSROOT) PKG_CONFIG_LIBDIR=$(SYSROOT)/usr/lib/arm-linux-gnueabihf/pkgconfig:$(SYSROOT)/usr/share/pkgconfig pkg-config
# -isystem: warnings about library headers are not ours (gps.h declares a
# global enumerator p), as for the host's /usr/include
BOARD_CFLAGS       += -isystem $(SYSROOT)/usr/include -isystem $(SYSROOT)/usr/include/arm-linux-gnueabihf
SYSROOT_LIBS       := $(SYSROOT)/usr/lib/arm-linux-gnueabihf:$(SYSROOT)/lib/arm-linux-gnueabihf
LDFLAGS            += -L$(SYSROOT)/usr/lib/arm-linux-gnueabihf -L$(SYSROOT)/lib/arm-linux-gnueabihf \
                      -Wl,-rpath-link,$(SYSROOT)/usr/lib/arm-linux-gnueabihf -Wl,-rpath-link,$(SYSROOT)/lib/arm-linux-gnueabihf
TEST_WRAPPER       := qemu-arm /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 --library-path /usr/arm-linux-gnueabihf/lib:$(SYSROOT_LIBS)
endif
