# rollout: one binary (build/rollout), the example app (build/hello), the simulator, the tests.
# `make test` runs everything, then the unit tests and the simulator again under ASan+UBSan.

BUILD   ?= build
CC      ?= cc
PKGS    := libuv yaml-0.1 sqlite3 libcurl jansson
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wno-missing-field-initializers -Isrc -MMD -MP
ifeq ($(FUZZ),1)
CFLAGS  += -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
endif
ifeq ($(SAN),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
# The libraries' flags come from pkg-config only after scripts/deps.sh has installed what is
# missing: $(BUILD)/deps-PROFILE.mk is an included makefile, so make builds it (running deps.sh) before
# anything else, with or without -j, then reads it and starts over. Computing them here, when the
# Makefile is parsed, would run pkg-config before the packages exist on a fresh machine.
.DEFAULT_GOAL := all
NODEPS_GOALS := clean format deps
# Goals that build or run tests need the test packages too (cmocka, clang's fuzzer runtime, ...).
TEST_GOALS   := test unit sim fuzz fuzz-bins asan-bins $(BUILD)/tests/% $(BUILD)/fuzz/%
DEPS_PROFILE := $(if $(filter $(TEST_GOALS),$(MAKECMDGOALS)),test,build)
ifneq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
include $(BUILD)/deps-$(DEPS_PROFILE).mk
endif
$(BUILD)/deps-%.mk: scripts/deps.sh
	@bash scripts/deps.sh --$*
	@mkdir -p $(dir $@)
	@c=$$(pkg-config --cflags $(PKGS)) && l=$$(pkg-config --libs $(PKGS)) && \
	  printf 'PKG_CFLAGS := %s\nPKG_LIBS := %s\n' "$$c" "$$l" >$@.tmp && mv $@.tmp $@ || \
	  { echo "make: pkg-config does not find $(PKGS) (scripts/deps.sh installs them)" >&2; exit 1; }
LIBS    = $(PKG_LIBS) -lm -lpthread

LIB_SRC   := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
# The simulator links the pure core and the allocator only: no libuv, no libcurl, no I/O.
CORE_SRC  := $(wildcard src/core/*.c) src/util/xmalloc.c
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o)
SIM_SRC   := $(wildcard tests/sim/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: FORCE all deps test unit sim e2e asan-bins fuzz fuzz-bins demo bench clean format
all: $(BUILD)/rollout $(BUILD)/hello $(BUILD)/rollout-sim

deps:
	@bash scripts/deps.sh --test

Q := $(if $(V),,@)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

# `rollout version` names the commit it was built from; the stamp changes only when the commit
# does, so cmd_version.o alone is rebuilt. Outside git (an archive) set ROLLOUT_GIT=... by hand.
ROLLOUT_GIT ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/git.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(ROLLOUT_GIT)' | cmp -s - $@ || echo '$(ROLLOUT_GIT)' >$@
$(BUILD)/src/cli/cmd_version.o: $(BUILD)/git.stamp
$(BUILD)/src/cli/cmd_version.o: CFLAGS += -DROLLOUT_GIT='"$(ROLLOUT_GIT)"'
FORCE:

$(BUILD)/librollout.a: $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/rollout: $(BUILD)/src/cli/main.o $(BUILD)/librollout.a
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/rollout-sim: $(SIM_SRC:%.c=$(BUILD)/%.o) $(CORE_OBJ)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lm

$(BUILD)/hello: $(BUILD)/examples/hello/hello.o
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lpthread

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/librollout.a
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LIBS)

# The whole suite; prints "N passed, N failed" last. LONG=1 runs the long variants.
test: all $(UNIT_BIN)
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 asan-bins >/dev/null
	@$(MAKE) --no-print-directory fuzz >/dev/null
	@BUILD=$(BUILD) bash tests/run.sh

asan-bins: $(BUILD)/rollout $(BUILD)/rollout-sim $(BUILD)/hello $(UNIT_BIN)

unit: all $(UNIT_BIN)
	@BUILD=$(BUILD) ONLY=unit bash tests/run.sh

sim: $(BUILD)/rollout-sim
	$(BUILD)/rollout-sim --seeds 10000

# libFuzzer targets (clang): build-fuzz/fuzz/fuzz_*, the library compiled once with coverage.
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang FUZZ=1 fuzz-bins

fuzz-bins: $(FUZZ_BIN)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/librollout.a
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

demo: all
	@bash scripts/demo.sh

bench: all
	@bash scripts/deps.sh --bench

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
