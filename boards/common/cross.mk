# What every cross board shares; its board.mk sets DEB_ARCH,
# DEB_HOST_MULTIARCH (the GNU triplet), QEMU (qemu-user program) and
# CROSS_LOADER (the target's dynamic loader), then includes this file.
CROSS_COMPILE      ?= $(DEB_HOST_MULTIARCH)-
# $(CROSS_COMPILE)gcc: Debian ships no <triplet>-cc.
CC                 := gcc
# Only the target's .pc files: the host's would hand out x86_64 paths.
PKG_CONFIG         := PKG_CONFIG_LIBDIR=/usr/lib/$(DEB_HOST_MULTIARCH)/pkgconfig:/usr/share/pkgconfig pkg-config
# Unit tests run under qemu-user, with the target's loader and libraries
# from multiarch (libc6:ARCH comes with the -dev packages). Not with
# -L /usr/TRIPLET: qemu 7.2 then hangs in every fork()ed child.
TEST_WRAPPER       := $(QEMU)
# Field units get the Debian hardening flags (lintian's hardening checks):
# fortified libc calls, stack protector, full RELRO with immediate binding.
BOARD_CFLAGS       += -D_FORTIFY_SOURCE=2 -fstack-protector-strong
LDFLAGS            += -Wl,-z,relro,-z,now
# SYSROOT=build/BOARD-sysroot/root (boards/sysroot.sh BOARD): the target's
# libraries unpacked privately instead of installed with multiarch (when the
# mirror's foreign index lags the host's versions). The C library is the
# cross toolchain's; tests run with its loader named explicitly, its libc
# first (libc6:ARCH in the sysroot is only for dpkg-shlibdeps; mixing the
# two glibc builds crashes forked children).
# Without SYSROOT, boards/deps.sh installs the target's libraries with
# multiarch, or, where that cannot work here, makes that private sysroot
# once and names it: `make BOARD=…` works in one command either way.
# ESS_SYSROOT_AUTO=0 (any value): never (tests/integration/boards.sh inspects the
# multiarch form with make -n and must not start an install).
ifeq ($(SYSROOT)$(ESS_SYSROOT_AUTO),)
ifeq ($(filter clean format format-check image-check,$(MAKECMDGOALS)),)
SYSROOT            := $(shell boards/deps.sh sysroot $(BOARD))
endif
endif
ifneq ($(SYSROOT),)
override SYSROOT   := $(abspath $(SYSROOT))
SYSROOT_LIBDIRS    := $(SYSROOT)/usr/lib/$(DEB_HOST_MULTIARCH) $(SYSROOT)/lib/$(DEB_HOST_MULTIARCH)
PKG_CONFIG         := PKG_CONFIG_SYSROOT_DIR=$(SYSROOT) PKG_CONFIG_LIBDIR=$(SYSROOT)/usr/lib/$(DEB_HOST_MULTIARCH)/pkgconfig:$(SYSROOT)/usr/share/pkgconfig pkg-config
# -isystem: warnings about library headers are not ours (gps.h declares a
# global enumerator p), as for the host's /usr/include
BOARD_CFLAGS       += -isystem $(SYSROOT)/usr/include -isystem $(SYSROOT)/usr/include/$(DEB_HOST_MULTIARCH)
SYSROOT_LIBS       := $(SYSROOT)/usr/lib/$(DEB_HOST_MULTIARCH):$(SYSROOT)/lib/$(DEB_HOST_MULTIARCH)
LDFLAGS            += $(SYSROOT_LIBDIRS:%=-L%) $(SYSROOT_LIBDIRS:%=-Wl,-rpath-link,%)
TEST_WRAPPER       := $(QEMU) /usr/$(DEB_HOST_MULTIARCH)/lib/$(CROSS_LOADER) --library-path /usr/$(DEB_HOST_MULTIARCH)/lib:$(SYSROOT_LIBS)
endif
