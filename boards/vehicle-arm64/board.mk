# In-vehicle terminal: arm64, ignition line, external GNSS on a serial port,
# buzzer, panic button. Cross-built with Debian's cross compiler against the
# arm64 multiarch -dev packages (boards/deps.sh ensure vehicle-arm64).
DEB_ARCH           := arm64
DEB_HOST_MULTIARCH := aarch64-linux-gnu
QEMU               := qemu-aarch64
CROSS_LOADER       := ld-linux-aarch64.so.1
BOARD_FEATURES     := gpsd serial-gnss ignition buzzer panic-button
include boards/common/cross.mk
