# ESS field agent — plain GNU make.
#   make                 build programs and the library
#   make check           build and run every test (SANITIZE=1: under ASan+UBSan)
#   make bench           print the figures (never pass/fail)
#   make install DESTDIR=… PREFIX=…
# A board is configuration: boards/$(BOARD)/board.mk may set CROSS_COMPILE,
# PKG_CONFIG, extra flags and features.

BOARD    ?= host
-include boards/$(BOARD)/board.mk

CROSS_COMPILE ?=
CC         := $(CROSS_COMPILE)$(if $(filter default,$(origin CC)),cc,$(CC))
AR         := $(CROSS_COMPILE)ar
PKG_CONFIG ?= pkg-config
PREFIX     ?= /usr/local
DESTDIR    ?=
VERSION    := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

SANITIZE ?= 0
WERROR   ?= $(if $(CI),1,0)
BUILD    ?= build/$(BOARD)$(if $(filter 1,$(SANITIZE)),-san)

PKGS := sqlite3 libcurl libgps libcjson libsodium zlib
# Evaluated on first use and then kept: on a fresh machine the packages
# appear only when the deps step has run, after this file was read.
lazy = $(eval $1 := $$(shell $2))$($1)
PKG_CFLAGS = $(call lazy,PKG_CFLAGS,$(PKG_CONFIG) --cflags $(PKGS) $(SYSTEMD_PKG) $(GPIOD_PKG))
PKG_LIBS   = $(call lazy,PKG_LIBS,$(PKG_CONFIG) --libs $(PKGS) $(SYSTEMD_PKG) $(GPIOD_PKG))
CMOCKA_LIBS = $(call lazy,CMOCKA_LIBS,$(PKG_CONFIG) --libs cmocka)
# Optional: the journal and sd_notify when libsystemd is there (#ifdef on the
# feature, never on a board name).
SYSTEMD_PKG = $(call lazy,SYSTEMD_PKG,$(PKG_CONFIG) --exists libsystemd 2>/dev/null && echo libsystemd)
# Optional: GPIO lines through libgpiod (hal/gpio.c says -ENOTSUP without).
GPIOD_PKG = $(call lazy,GPIOD_PKG,$(PKG_CONFIG) --exists libgpiod 2>/dev/null && echo libgpiod)
FEATURE_CFLAGS = $(if $(SYSTEMD_PKG),-DHAVE_SYSTEMD) $(if $(GPIOD_PKG),-DHAVE_LIBGPIOD)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wmissing-declarations -Wpointer-arith -Wcast-qual -Wsign-compare \
        -Wformat=2 -Wundef -Wvla -Wnull-dereference -fno-common
CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 $(WARN) $(if $(filter 1,$(WERROR)),-Werror) \
        -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -DESS_VERSION='"$(VERSION)"' \
        -I. $(PKG_CFLAGS) $(FEATURE_CFLAGS) $(BOARD_CFLAGS)
# FUZZ=1: the library instrumented for libFuzzer (clang), see `make fuzz`.
ifeq ($(FUZZ),1)
override CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
endif
ifeq ($(SANITIZE),1)
override CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=address,undefined
endif
LDLIBS += $(PKG_LIBS) $(BOARD_LIBS) -lm

# Programs: each agent/cmd-NAME.c holds one main() and becomes $(BUILD)/NAME.
PROG_SRCS := $(wildcard agent/cmd-*.c sync/cmd-*.c hal/cmd-*.c)
PROGS     := $(patsubst %.c,$(BUILD)/%,$(notdir $(subst cmd-,,$(PROG_SRCS))))
LIB_SRCS  := $(filter-out $(PROG_SRCS),$(wildcard agent/*.c sync/*.c hal/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libess.a

TESTLIB_SRCS := $(filter-out tests/lib/fakegpiod.c,$(wildcard tests/lib/*.c))
TESTLIB_OBJS := $(TESTLIB_SRCS:%.c=$(BUILD)/obj/%.o)
# The unit tests link a fake libgpiod (tests/lib/fakegpiod.h: a chip made of
# files under HAL_SYSFS_ROOT) in place of the real one, which needs a GPIO
# chip this kernel cannot make; every program links the real libgpiod.
FAKEGPIOD_OBJ := $(BUILD)/obj/tests/lib/fakegpiod.o
UNIT_LDLIBS    = $(filter-out -lgpiod,$(LDLIBS))
UNIT_SRCS    := $(wildcard tests/unit/test_*.c)
UNIT_BINS    := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Integration tests in C drive the real programs over loopback.
ITEST_SRCS   := $(wildcard tests/integration/itest_*.c)
ITEST_BINS   := $(ITEST_SRCS:tests/integration/%.c=$(BUILD)/tests/%)

# Tools the tests and benchmarks drive (a link-emulating proxy, generators).
TOOL_SRCS    := $(wildcard tests/tools/*.c)
TOOL_BINS    := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

# The reference ESS server: its own program (sync/refserver/), libmicrohttpd.
REFSERVER_SRCS := $(wildcard sync/refserver/*.c)
REFSERVER      := $(if $(REFSERVER_SRCS),$(BUILD)/ess-refserver)
MHD_LIBS = $(call lazy,MHD_LIBS,$(PKG_CONFIG) --libs libmicrohttpd)
# libmicrohttpd on the loop (agent/mhd/), linked by the programs that serve
# HTTP only, so that libess.a stays free of libmicrohttpd.
MHD_LOOP_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard agent/mhd/*.c))
# The touch UI (agent/ui/, docs/ui.md): its own program ess-ui, libmicrohttpd,
# the web files (agent/ui/www/) compiled in; tests/ui/ drives it in Chromium.
UI_SRCS   := $(filter-out agent/ui/main.c,$(wildcard agent/ui/*.c))
UI_WWW    := $(sort $(wildcard agent/ui/www/*))
UI_LIB    := $(if $(UI_SRCS),$(BUILD)/libessui.a)
UI        := $(if $(UI_SRCS),$(BUILD)/ess-ui)
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BUILD   := build/$(BOARD)-fuzz
FUZZ_SECONDS ?= 300
BENCH_SRCS   := $(wildcard tests/bench/bench_*.c)
BENCH_BINS   := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps check bench bench-essd bench-long install clean format format-check demo fuzz fuzz-build fuzzers soak valgrind \
        package lintian package-test
all: $(BUILD)/.deps $(LIB) $(PROGS) $(REFSERVER) $(UI)

# Installs missing Debian packages (as root) or says what to run.
deps $(BUILD)/.deps: boards/deps.sh
	@ESS_SYSROOT='$(SYSROOT)' boards/deps.sh ensure $(BOARD)
	@mkdir -p $(BUILD) && touch $(BUILD)/.deps

$(BUILD)/obj/%.o: %.c | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# libgps hands out gps_data_t, which holds struct timespec: the one file
# that uses it must see the struct with libgps's own time_t. Debian 12's
# armhf libgps is built with a 32-bit time_t (board.mk: LIBGPS_TIME_BITS);
# the file converts to int64 ms at once (docs/boards.md).
$(BUILD)/obj/hal/gps_gpsd.o: override CFLAGS += $(if $(filter 32,$(LIBGPS_TIME_BITS)),-U_TIME_BITS)
# The same for libgpiod 1.6: struct gpiod_line_event holds a struct timespec
# (Debian 12's armhf libgpiod2 has a 32-bit time_t, board.mk:
# LIBGPIOD_TIME_BITS); hal/gpio.c only reads its event_type, and the fake
# that stands in for the library in the unit tests gets the library's flags.
$(BUILD)/obj/hal/gpio.o $(FAKEGPIOD_OBJ): override CFLAGS += $(if $(filter 32,$(LIBGPIOD_TIME_BITS)),-U_TIME_BITS)

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%: $(BUILD)/obj/agent/cmd-%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(TESTLIB_OBJS) $(FAKEGPIOD_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(UNIT_LDLIBS) $(CMOCKA_LIBS)

$(BUILD)/tests/itest_%: $(BUILD)/obj/tests/integration/itest_%.o $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/ess-refserver: $(REFSERVER_SRCS:%.c=$(BUILD)/obj/%.o) $(MHD_LOOP_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(MHD_LIBS)

$(BUILD)/gen/ui_assets.c: agent/ui/gen-assets.sh $(UI_WWW)
	@mkdir -p $(dir $@)
	sh agent/ui/gen-assets.sh $@ $(UI_WWW)

$(BUILD)/obj/gen/ui_assets.o: $(BUILD)/gen/ui_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(UI_LIB): $(UI_SRCS:%.c=$(BUILD)/obj/%.o) $(MHD_LOOP_OBJS) $(BUILD)/obj/gen/ui_assets.o
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/ess-ui: $(BUILD)/obj/agent/ui/main.o $(UI_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(MHD_LIBS)

$(BUILD)/tests/test_ui_%: $(BUILD)/obj/tests/unit/test_ui_%.o $(TESTLIB_OBJS) $(FAKEGPIOD_OBJ) $(UI_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(UNIT_LDLIBS) $(MHD_LIBS) $(CMOCKA_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A cross board (board.mk sets TEST_WRAPPER, e.g. qemu-user) runs the unit
# tests only: the integration tests need gpsd, nginx and the host's tools.
ifeq ($(TEST_WRAPPER),)
check: all $(UNIT_BINS) $(ITEST_BINS) $(TOOL_BINS)
	@tests/run.sh $(BUILD)
else
check: all $(UNIT_BINS)
	@ESS_TEST_WRAPPER='$(TEST_WRAPPER)' ESS_UNIT_ONLY=1 tests/run.sh $(BUILD)
endif

bench: all $(BENCH_BINS) $(TOOL_BINS) $(BUILD)/bench/skeleton
	@tests/bench/run.sh $(BUILD)

# essd's figures run for minutes (bench_essd): ~13 min here, ~63 min with the
# 1-hour growth. Plain `make bench` only prints how to get them.
bench-essd: all $(BUILD)/bench/bench_essd $(BUILD)/bench/skeleton $(TOOL_BINS)
	@ESS_BENCH_ESSD=1 ESS_BUILD=$(BUILD) $(BUILD)/bench/bench_essd
bench-long: all $(BUILD)/bench/bench_essd $(BUILD)/bench/skeleton $(TOOL_BINS)
	@ESS_BENCH_ESSD=1 ESS_BENCH_LONG=1 ESS_BUILD=$(BUILD) $(BUILD)/bench/bench_essd

# The baseline program of bench_essd: the libraries only, nothing of ours.
$(BUILD)/bench/skeleton: $(BUILD)/obj/tests/bench/skeleton.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer harnesses (tests/fuzz/fuzz_*.c) with their seed corpora in
# tests/fuzz/corpus/NAME/; make check runs each briefly, make fuzz long.
fuzz-build:
	@$(MAKE) -s BUILD=$(FUZZ_BUILD) CC=clang FUZZ=1 fuzzers
fuzzers: $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)
# The reference server's harness links the server's modules (not its main).
$(BUILD)/fuzz/fuzz_refserver: $(BUILD)/obj/tests/fuzz/fuzz_refserver.o \
		$(filter-out %/main.o,$(REFSERVER_SRCS:%.c=$(BUILD)/obj/%.o)) $(MHD_LOOP_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS) $(MHD_LIBS)
# The long forms of the fault tests, with a summary table.
soak: all $(UNIT_BINS) $(ITEST_BINS) $(TOOL_BINS)
	@tests/soak.sh $(BUILD)

# Every essd scenario of itest_essd under valgrind --leak-check=full (make
# check runs the short form, tests/integration/valgrind_essd.sh).
valgrind: all $(ITEST_BINS) $(TOOL_BINS)
	@ESS_BUILD=$(BUILD) ESS_VALGRIND=all CMOCKA_MESSAGE_OUTPUT=TAP $(BUILD)/tests/itest_essd

fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

demo: all $(TOOL_BINS)
	@tests/demo.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	$(if $(PROGS)$(REFSERVER)$(UI),install -m 0755 $(PROGS) $(REFSERVER) $(UI) $(DESTDIR)$(PREFIX)/bin/)
	install -d $(DESTDIR)$(PREFIX)/share/doc/ess-agent
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/ess-agent/
	install -m 0644 boards/$(BOARD)/essd.conf $(DESTDIR)$(PREFIX)/share/doc/ess-agent/essd.conf.example

# The board's Debian package (boards/package.sh, docs/boards.md), lintian
# on it, and (as root, never in make check) dpkg -i / dpkg -r of it here.
PACKAGE_CONF ?= boards/$(BOARD)/essd.conf
DEB_ARCH     ?= $(shell dpkg --print-architecture)
PACKAGE_DEB  := $(BUILD)/ess-agent_$(VERSION)_$(DEB_ARCH).deb
package: all
	@boards/package.sh $(BUILD) $(BOARD) $(VERSION) $(DEB_ARCH) $(CROSS_COMPILE)strip $(PACKAGE_CONF) $(SYSROOT)
lintian: package
	lintian --info --display-info --pedantic $(PACKAGE_DEB)
package-test: package
	@sh tests/package/dpkg_install.sh $(PACKAGE_DEB) $(BUILD)
# A flashable disk image of a cross board (boards/image.sh, as root, ~5 min):
# $(BUILD)/ess-$(BOARD).img and its .bmap. image-check inspects the last one
# built (partitions, files, users, enabled units) without mounting it.
# IMAGE_CONF=FILE: the fleet's essd.conf in the image instead of the board's.
.PHONY: image image-check
image: package
	@ESS_IMAGE_CONF='$(IMAGE_CONF)' boards/image.sh $(BUILD) $(BOARD) $(PACKAGE_DEB)
image-check:
	@sh tests/image/check_image.sh $(BUILD)/ess-$(BOARD).img $(BOARD)

format:
	clang-format -i $(wildcard */*.[ch] agent/ui/*.[ch] agent/mhd/*.[ch] sync/refserver/*.[ch] tests/*/*.[ch])
format-check:
	clang-format --dry-run -Werror $(wildcard */*.[ch] agent/ui/*.[ch] agent/mhd/*.[ch] sync/refserver/*.[ch] tests/*/*.[ch])

clean:
	rm -rf build

.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
