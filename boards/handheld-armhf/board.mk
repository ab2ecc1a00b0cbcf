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
