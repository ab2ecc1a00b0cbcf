# Rugged handheld: 32-bit ARM (armhf), battery, vibration motor, built-in
# GNSS. Cross-built with Debian's cross compiler against the armhf multiarch
# -dev packages (boards/deps.sh ensure handheld-armhf).
# time_t: the Makefile builds everything with -D_TIME_BITS=64; docs/boards.md
# says which library interfaces carry a time_t and how each is handled.
DEB_ARCH           := armhf
DEB_HOST_MULTIARCH := arm-linux-gnueabihf
QEMU               := qemu-arm
CROSS_LOADER       := ld-linux-armhf.so.3
BOARD_FEATURES     := gpsd builtin-gnss battery vibration panic-button
# libgps's gps_data_t embeds struct timespec. Debian 12's armhf libgps28 was
# built with a 32-bit time_t (the 64-bit time_t transition renamed it with a
# t64 suffix in Debian 13), so hal/gps_gpsd.c alone is compiled with the
# library's time_t; everything else, and every value it passes on, is 64-bit.
LIBGPS_TIME_BITS   := $(shell dpkg-query -W -f='$${Package}\n' 'libgps*:armhf' 2>/dev/null | grep -q 't64$$' && echo 64 || echo 32)
# libgpiod 1.6's struct gpiod_line_event holds a struct timespec, and
# Debian 12's armhf libgpiod2 has a 32-bit time_t: hal/gpio.c alone is
# compiled with the library's time_t (it reads only the event type).
LIBGPIOD_TIME_BITS := $(shell dpkg-query -W -f='$${Package}\n' 'libgpiod*:armhf' 2>/dev/null | grep -q 't64$$' && echo 64 || echo 32)
include boards/common/cross.mk
