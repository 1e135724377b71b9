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
NODEPS_GOALS := clean format deps uninstall
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

# ---- install, man pages, Debian package (docs/install.md) ----
# The man pages are made from docs/ by scripts/md2man.py: docs/cli.md is rollout(1), docs/spec.md
# rollout.yaml(5), docs/daemon.md rollout-daemon(8). The systemd unit (UNIT: dist/rollout.service.in,
# or a finished dist/rollout.service) is written with @BINDIR@ filled in, and its sysusers.d file
# (dist/rollout.sysusers) installed as rollout.conf; each only when the tree has it.
PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
MANDIR         ?= $(PREFIX)/share/man
DOCDIR         ?= $(PREFIX)/share/doc/rollout
BASHCOMPDIR    ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR     ?= $(PREFIX)/share/zsh/vendor-completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
VERSION        := $(shell sed -n 's/^.define ROLLOUT_VERSION "\(.*\)"/\1/p' src/cli/cmd.h)
UNIT           := $(firstword $(wildcard dist/rollout.service.in dist/rollout.service))
SYSUSERS       := $(wildcard dist/rollout.sysusers)
DOCS           := README.md $(wildcard docs/*.md)
MAN_PAGES      := $(BUILD)/man/rollout.1 $(BUILD)/man/rollout.yaml.5 $(BUILD)/man/rollout-daemon.8
MD2MAN          = python3 scripts/md2man.py --version "$(VERSION)"

.PHONY: man install uninstall deb
man: $(MAN_PAGES)

# The pages name DOCDIR, the unit BINDIR (and UNIT may be set): this file changes when they do,
# and those are made again.
$(BUILD)/install-paths: FORCE
	@mkdir -p $(dir $@)
	@echo '$(DOCDIR) $(BINDIR) $(UNIT)' | cmp -s - $@ || echo '$(DOCDIR) $(BINDIR) $(UNIT)' >$@

$(BUILD)/rollout.service: $(UNIT) $(BUILD)/install-paths
	$(Q)sed 's|@BINDIR@|$(BINDIR)|g' $< >$@.tmp && mv $@.tmp $@

$(BUILD)/man/rollout.1: docs/cli.md scripts/md2man.py src/cli/cmd.h $(BUILD)/install-paths
	@mkdir -p $(dir $@)
	$(Q)$(MD2MAN) --name rollout --section 1 --summary "rolling deployments for services on your own servers" \
	  --see-also "rollout.yaml(5), rollout-daemon(8), and the documents in $(DOCDIR)" $< >$@.tmp && mv $@.tmp $@
$(BUILD)/man/rollout.yaml.5: docs/spec.md scripts/md2man.py src/cli/cmd.h $(BUILD)/install-paths
	@mkdir -p $(dir $@)
	$(Q)$(MD2MAN) --name rollout.yaml --section 5 --summary "the service spec of rollout" \
	  --see-also "rollout(1), rollout-daemon(8), and the documents in $(DOCDIR)" $< >$@.tmp && mv $@.tmp $@
$(BUILD)/man/rollout-daemon.8: docs/daemon.md scripts/md2man.py src/cli/cmd.h $(BUILD)/install-paths
	@mkdir -p $(dir $@)
	$(Q)$(MD2MAN) --name rollout-daemon --section 8 --summary "the control plane of rollout" \
	  --see-also "rollout(1), rollout.yaml(5), and the documents in $(DOCDIR)" $< >$@.tmp && mv $@.tmp $@

install: $(BUILD)/rollout $(MAN_PAGES) $(if $(UNIT),$(BUILD)/rollout.service)
	install -D -m 0755 $(BUILD)/rollout $(DESTDIR)$(BINDIR)/rollout
	install -D -m 0644 $(BUILD)/man/rollout.1 $(DESTDIR)$(MANDIR)/man1/rollout.1
	install -D -m 0644 $(BUILD)/man/rollout.yaml.5 $(DESTDIR)$(MANDIR)/man5/rollout.yaml.5
	install -D -m 0644 $(BUILD)/man/rollout-daemon.8 $(DESTDIR)$(MANDIR)/man8/rollout-daemon.8
	install -D -m 0644 dist/completion/rollout.bash $(DESTDIR)$(BASHCOMPDIR)/rollout
	install -D -m 0644 dist/completion/_rollout $(DESTDIR)$(ZSHCOMPDIR)/_rollout
	install -d $(DESTDIR)$(DOCDIR)
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	$(if $(UNIT),install -D -m 0644 $(BUILD)/rollout.service $(DESTDIR)$(SYSTEMDUNITDIR)/rollout.service)
	$(if $(SYSUSERS),install -D -m 0644 $(SYSUSERS) $(DESTDIR)$(SYSUSERSDIR)/rollout.conf)

# Removes what install put there (and the doc directory, when it is left empty).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/rollout $(DESTDIR)$(MANDIR)/man1/rollout.1 \
	  $(DESTDIR)$(MANDIR)/man5/rollout.yaml.5 $(DESTDIR)$(MANDIR)/man8/rollout-daemon.8 \
	  $(DESTDIR)$(BASHCOMPDIR)/rollout $(DESTDIR)$(ZSHCOMPDIR)/_rollout \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/rollout.service $(DESTDIR)$(SYSUSERSDIR)/rollout.conf $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# $(BUILD)/rollout_<version>_<arch>.deb, by debhelper from debian/ (debian/rules installs with
# `make install DESTDIR=debian/rollout PREFIX=/usr`, reusing $(BUILD)).
deb: $(BUILD)/rollout $(MAN_PAGES)
	@bash scripts/deps.sh --deb
	$(Q)DEB_RULES_REQUIRES_ROOT=no ROLLOUT_BUILD=$(BUILD) ROLLOUT_VERSION=$(VERSION) debian/rules binary
	$(Q)cd debian && rm -rf rollout .debhelper files *.substvars *.debhelper *.debhelper.log debhelper-build-stamp
	@echo "  DEB     $(BUILD)/rollout_$(VERSION)_$$(dpkg-architecture -qDEB_HOST_ARCH).deb"
