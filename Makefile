# cellsched — top-level Makefile (plain make, no generators).
#
#   make            build every binary into bin/ (checks that the packages are there:
#                   `make deps` installs them)
#   make test       build under ASan+UBSan, check the layers (tools/layers.sh) and run
#                   every Criterion suite
#   make fuzz       build every libFuzzer target with clang and run each for
#                   FUZZ_SECONDS (docs/fuzzing.md); make fuzz-seeds writes the seeds
#   make SANITIZER=thread test    the same under TSan
#   make coverage   run the suites with gcov instrumentation, summary per file
#   make install    binaries, man pages, systemd units, completion under
#                   $(DESTDIR)$(PREFIX) (default /usr/local); make uninstall
#   make deps       install missing Debian packages (apt-get; sudo when not root)
#   make ui-shot    take docs/ui.png anew: the dashboard of a small live cell
#   make clean
#
# Every variable in this block may be overridden: `make CC=clang OPT=-O3`.

CC        ?= cc
OPT       ?= -O2
DEBUG     ?= -g
SANITIZER ?=
PREFIX    ?= /usr/local
BUILD     ?= build
BIN       ?= bin
WARN      ?= -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wformat=2 -Wcast-align -Wpointer-arith -Wwrite-strings -Wundef \
             -Wvla -Wnull-dereference -Wdouble-promotion \
             -Werror=implicit-function-declaration -Wno-unused-parameter
CSTD      ?= -std=c11 -D_GNU_SOURCE
PKGS      ?= lmdb msgpack libxxhash jansson raft libuv zlib
TEST_PKGS ?= criterion nanomsg
# The suites to run (names of tests/test_*.c without .c); all by default.
TESTS     ?=
# The clock the suites run on: `boot` starts CLOCK_MONOTONIC and
# CLOCK_BOOTTIME near zero (a Linux time namespace, as on a machine booted a
# second ago) where the machine allows it; `host` uses the machine's own.
TEST_CLOCK ?= boot

ifdef CI
WARN += -Werror
endif

# `make test` defaults to ASan+UBSan; any other goal builds without sanitizers
# unless SANITIZER is given.
ifeq ($(SANITIZER),)
ifneq ($(filter test,$(MAKECMDGOALS)),)
SANITIZER := address,undefined
endif
endif

comma := ,
ifneq ($(SANITIZER),)
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer
ifneq ($(findstring undefined,$(SANITIZER)),)
SANFLAGS += -fno-sanitize-recover=undefined
endif
OPT      := -O1
BUILD    := $(BUILD)/$(subst $(comma),-,$(SANITIZER))
# Sanitized binaries stay beside their objects, so that `make test` never
# replaces the optimised ones in bin/; integration tests find them through
# CELLSCHED_BIN.
BIN      := $(BUILD)/bin
endif

ifeq ($(COVERAGE),1)
SANFLAGS += --coverage
OPT      := -O0
BUILD    := build/coverage
BIN      := $(BUILD)/bin
endif

# Dependency check (tools/deps.sh: a command, a pkg-config module or a
# header for each piece, so a missing compiler or libnng, which has no .pc
# file, is named). It only checks: nothing installs while the Makefile
# parses. `make deps`, ./test.sh and ./run.sh install what is missing.
ifeq ($(filter deps clean uninstall,$(MAKECMDGOALS)),)
DEPS_MISSING := $(shell CC='$(CC)' sh tools/deps.sh check 2>&1 >/dev/null)
ifneq ($(DEPS_MISSING),)
$(error $(DEPS_MISSING))
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
TEST_CFLAGS:= $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS  := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)
# Only what reads or writes JSON links jansson (job specs, the schedulers'
# policy file, the tools, and cellstated for its HTTP API, http/): cell-agent
# does not.
JSON_LIBS  := $(shell pkg-config --libs jansson 2>/dev/null)
# Only what links the server (cellstated, the tools and tests that start one
# in-process) links the consensus library and its event loop.
RAFT_LIBS  := $(shell pkg-config --libs raft libuv 2>/dev/null)
# Only what reads Google's cluster trace (tools/cellsim_trace.c: cellsim and
# its suites) links zlib; a tool or suite names its extra libraries in
# TOOL_LIBS_<tool> or SUITE_LIBS_<suite>.
ZLIB_LIBS  := $(shell pkg-config --libs zlib 2>/dev/null)
TOOL_LIBS_cellsim := $(ZLIB_LIBS)
SUITE_LIBS_test_cellsim_trace := $(ZLIB_LIBS)
SUITE_LIBS_test_cellsim := $(ZLIB_LIBS)
SUITE_LIBS_test_cellsim_replay := $(ZLIB_LIBS)
SUITE_LIBS_test_cellsim_sweep := $(ZLIB_LIBS)
SUITE_LIBS_test_cellsim_fidelity := $(ZLIB_LIBS)

CFLAGS  = $(CSTD) $(OPT) $(DEBUG) $(WARN) $(SANFLAGS) -I. $(PKG_CFLAGS) -MMD -MP
LDFLAGS = $(SANFLAGS)
# nng ships no pkg-config file on Debian. mbedTLS checks the TLS files at
# start (proto/tls.c), is the TLS engine cellsched gives nng
# (proto/tlsengine.c), and carries Raft between replicas (server/rafttls.c).
LDLIBS  = $(shell pkg-config --libs $(filter-out jansson raft libuv zlib,$(PKGS)) 2>/dev/null) -lnng -lmbedtls -lmbedx509 -lmbedcrypto -lm -lpthread

# The layers, one archive per folder, each linked only into what uses it.
# Dependencies point one way (tools/layers.sh checks every #include):
#   cellstate   the store: records, LMDB, allocation table, log
#   txn         the semantics of change: claims, conflict, commit, commands
#   proto       the wire codec and client, below all its users
#   spec        job specs as JSON and Marathon apps, the cell's JSON (jansson)
#   server      cellstated: transport, dispatch, reads, feed, writer, monitor
#   http        cellstated's HTTP API: a client of the server's protocol (JSON by spec/)
#   schedulers  the loop, the copy, placement (batch/ and service/ hold main)
#   agent       cell-agent
.DEFAULT_GOAL := all
LAYERS := cellstate txn proto spec server http schedulers
MAINS  := server/cellstated.c
layer_src = $(filter-out $(MAINS),$(wildcard $1/*.c))
layer_a   = $(BUILD)/lib/$1.a
define layer_rule
$(call layer_a,$1): $(patsubst %.c,$(BUILD)/%.o,$(call layer_src,$1))
	@mkdir -p $$(@D)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call layer_rule,$l)))

# Link order: users before what they use.
CORE_A   := $(call layer_a,proto) $(call layer_a,txn) $(call layer_a,cellstate)
SERVER_A := $(call layer_a,server) $(CORE_A)
HTTP_A   := $(call layer_a,http) $(call layer_a,spec)
SCHED_A  := $(call layer_a,schedulers) $(CORE_A)
ALL_A    := $(HTTP_A) $(call layer_a,server) $(call layer_a,schedulers) $(CORE_A)

# Daemons: a main() in the folder of the part they run.
DAEMON_BIN := $(BIN)/cellstated

# Programs made of every .c in their own folder (one of them holds main()):
# the agent and the two schedulers, with the archives they use and whether
# they read JSON.
PROGRAMS := cell-agent:agent cell-batch:schedulers/batch cell-service:schedulers/service
prog_name = $(word 1,$(subst :, ,$1))
prog_dir  = $(word 2,$(subst :, ,$1))
prog_libs = $(if $(filter agent,$(call prog_dir,$1)),$(CORE_A),$(SCHED_A))
prog_json = $(if $(filter agent,$(call prog_dir,$1)),,$(JSON_LIBS))
PROG_BIN := $(foreach p,$(PROGRAMS),$(if $(wildcard $(call prog_dir,$p)/*.c),$(BIN)/$(call prog_name,$p)))

# Tools: tools/NAME.c holds main(); tools/NAME_*.c, if any, are linked with it.
TOOLS   := cellbench cellchaos cellctl cellserve cellsim
TOOL_BIN:= $(foreach t,$(TOOLS),$(if $(wildcard tools/$t.c),$(BIN)/$t))
# cellchaos also uses cellbench's command line and directory helpers and its
# way of finding cellstated.
TOOL_SHARED_cellchaos := tools/cellbench_util.c tools/cellbench_daemon.c
# cellsim makes and removes its store's directory with cellbench's helpers.
TOOL_SHARED_cellsim := tools/cellbench_util.c

# The agent's and the tools' modules without their main(), for the suites
# that test them directly (an archive: a suite links only what it uses).
MODULE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out agent/cell_agent.c,$(wildcard agent/*.c)) \
                $(wildcard tools/*_*.c))
MODULE_A   := $(BUILD)/libmodules.a

TEST_SRC := $(if $(TESTS),$(TESTS:%=tests/%.c),$(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SUPPORT_SRC := $(filter-out tests/test_%.c,$(wildcard tests/*.c))
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps test coverage clean
.SECONDARY:
all: $(TOOL_BIN) $(DAEMON_BIN) $(PROG_BIN)

deps:
	@CC='$(CC)' sh tools/deps.sh install

# Every object and binary depends on the flags they were built with: a change
# of CC, CFLAGS (CI=true adds -Werror), LDFLAGS or LDLIBS rebuilds what it
# affects. The file is rewritten only when its text changes, so an unchanged
# build stays up to date.
FLAGS_FILE := $(BUILD)/flags
FLAGS_TEXT := $(CC) $(CFLAGS) | $(TEST_CFLAGS) | $(LDFLAGS) | $(LDLIBS) $(JSON_LIBS) $(RAFT_LIBS) $(ZLIB_LIBS) $(TEST_LIBS)
.PHONY: FORCE
$(FLAGS_FILE): FORCE
	@mkdir -p $(@D)
	@printf '%s\n' '$(FLAGS_TEXT)' | cmp -s - $@ || printf '%s\n' '$(FLAGS_TEXT)' > $@

$(BUILD)/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The web dashboard's files (ui/), embedded in the http layer as C arrays
# (http/ui.h) by tools/embed.sh (od and awk: no xxd on a fresh Debian); the
# generated .c lives in $(BUILD)/gen, never in the checkout.
UI_FILES := ui/index.html ui/app.js ui/style.css
$(BUILD)/gen/ui_files.c: tools/embed.sh $(UI_FILES)
	@mkdir -p $(@D)
	sh tools/embed.sh $(UI_FILES) > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/ui_files.o: $(BUILD)/gen/ui_files.c $(FLAGS_FILE)
	$(CC) $(CFLAGS) -c $< -o $@
$(call layer_a,http): $(BUILD)/gen/ui_files.o

.SECONDEXPANSION:
$(BIN)/%: tools/%.c $$(wildcard tools/$$*_*.c) $$(TOOL_SHARED_$$*) $(ALL_A) $(FLAGS_FILE)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) $(filter %.c,$^) $(ALL_A) -o $@ $(LDLIBS) $(JSON_LIBS) $(RAFT_LIBS) $(TOOL_LIBS_$*)

$(BIN)/cellstated: server/cellstated.c $(HTTP_A) $(SERVER_A) $(FLAGS_FILE)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(HTTP_A) $(SERVER_A) -o $@ $(LDLIBS) $(JSON_LIBS) $(RAFT_LIBS)

define program_rule
$(BIN)/$(call prog_name,$1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(call prog_dir,$1)/*.c)) $(call prog_libs,$1) $(FLAGS_FILE)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $$(filter %.o,$$^) $(call prog_libs,$1) -o $$@ $(LDLIBS) $(call prog_json,$1)
endef
$(foreach p,$(PROGRAMS),$(if $(wildcard $(call prog_dir,$p)/*.c),$(eval $(call program_rule,$p))))

$(MODULE_A): $(MODULE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/%: tests/%.c $(TEST_SUPPORT_OBJ) $(MODULE_A) $(ALL_A) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) $(LDFLAGS) $< $(TEST_SUPPORT_OBJ) $(MODULE_A) $(ALL_A) -o $@ $(LDLIBS) $(JSON_LIBS) $(RAFT_LIBS) $(SUITE_LIBS_$*) $(TEST_LIBS)

# Each suite runs on its own (tests/run-suites.sh): one closing line counts
# them all; by default every suite runs with its clocks starting near zero, as
# on a freshly booted machine (TEST_CLOCK=host: the machine's own clock).
test: $(TEST_BIN) $(TOOL_BIN) $(DAEMON_BIN) $(PROG_BIN)
	@sh tools/layers.sh
	@CELLSCHED_BIN=$(CURDIR)/$(BIN) TEST_CLOCK=$(TEST_CLOCK) sh tests/run-suites.sh $(TEST_BIN)

# A local cell (tools/run-cell.sh): REPLICAS cellstated replicas (default 3;
# 1: a single cellstated), three agents, both schedulers
# and examples/, in RUN_DIR (emptied first; default outside the checkout, in
# $XDG_STATE_HOME/cellsched/run or ~/.local/state/cellsched/run), shown live
# until Ctrl-C or for RUN_FOR seconds. TLS=1: every daemon and cellctl over
# mutual TLS, with certificates from tools/cellsched-certs.sh.
RUN_FOR ?=
RUN_DIR ?=
REPLICAS ?= 3
TLS ?=
.PHONY: run
run: all
	CELLSCHED_BIN=$(CURDIR)/$(BIN) tools/run-cell.sh --replicas '$(REPLICAS)' $(if $(RUN_DIR),--dir '$(RUN_DIR)') $(if $(RUN_FOR),--for '$(RUN_FOR)') $(if $(TLS),--tls)

# docs/ui.png, the dashboard's picture in the docs, taken anew of a small
# live cell by headless chromium (tools/ui-shot.sh; about a minute).
.PHONY: ui-shot
ui-shot: all
	CELLSCHED_BIN=$(CURDIR)/$(BIN) tools/ui-shot.sh docs/ui.png

# ---- install (Debian's layout under PREFIX; DESTDIR for staging) ----------
# `make install PREFIX=/usr DESTDIR=/tmp/stage` builds what is missing, then
# copies the programs, their man pages, the daemons' systemd units (their
# ExecStart= pointing into PREFIX) with a sample /etc/default/cellsched
# (into share/doc/cellsched/), and cellctl's bash completion; `make
# uninstall` with the same PREFIX and DESTDIR removes exactly those files.
# Every program goes to bin/, daemons included (not sbin/): cellbench and
# cellchaos find cellstated and the schedulers in their own directory, and
# the daemons are also run by users, not only root. Daemons' man pages are
# section 8, the tools' 1. tests/test_install.c installs binaries built
# elsewhere without rebuilding them: BIN=DIR and `-o DIR/PROGRAM` for each.
INSTALL      ?= install
DESTDIR      ?=
INSTALL_DAEMONS := cellstated cell-agent cell-batch cell-service
INSTALL_TOOLS   := cellctl cellbench cellsim
INSTALL_PROGS   := $(INSTALL_DAEMONS) $(INSTALL_TOOLS)
BINDIR       := $(DESTDIR)$(PREFIX)/bin
MAN1DIR      := $(DESTDIR)$(PREFIX)/share/man/man1
MAN8DIR      := $(DESTDIR)$(PREFIX)/share/man/man8
UNITDIR      := $(DESTDIR)$(PREFIX)/lib/systemd/system
DOCDIR       := $(DESTDIR)$(PREFIX)/share/doc/cellsched
COMPLETIONDIR:= $(DESTDIR)$(PREFIX)/share/bash-completion/completions
INSTALLED    := $(INSTALL_PROGS:%=$(BINDIR)/%) $(INSTALL_DAEMONS:%=$(MAN8DIR)/%.8) \
                $(INSTALL_TOOLS:%=$(MAN1DIR)/%.1) $(INSTALL_DAEMONS:%=$(UNITDIR)/%.service) \
                $(DOCDIR)/cellsched.default $(COMPLETIONDIR)/cellctl
.PHONY: install uninstall
install: $(INSTALL_PROGS:%=$(BIN)/%)
	$(INSTALL) -d $(BINDIR) $(MAN1DIR) $(MAN8DIR)
	$(INSTALL) -m 0755 $(INSTALL_PROGS:%=$(BIN)/%) $(BINDIR)
	$(INSTALL) -m 0644 $(INSTALL_DAEMONS:%=man/%.8) $(MAN8DIR)
	$(INSTALL) -m 0644 $(INSTALL_TOOLS:%=man/%.1) $(MAN1DIR)
	$(INSTALL) -d $(UNITDIR) $(DOCDIR) $(COMPLETIONDIR)
	for d in $(INSTALL_DAEMONS); do \
	  sed 's|@BINDIR@|$(PREFIX)/bin|g' dist/systemd/$$d.service > $(UNITDIR)/$$d.service && \
	  chmod 0644 $(UNITDIR)/$$d.service || exit 1; \
	done
	$(INSTALL) -m 0644 dist/cellsched.default $(DOCDIR)/cellsched.default
	$(INSTALL) -m 0644 dist/cellctl.bash $(COMPLETIONDIR)/cellctl

uninstall:
	rm -f $(INSTALLED)

coverage:
	$(MAKE) COVERAGE=1 test
	@for d in cellstate txn proto spec server schedulers schedulers/batch schedulers/service agent; do \
	  ls $$d/*.c >/dev/null 2>&1 || continue; \
	  gcov -n -o build/coverage/$$d $$d/*.c 2>/dev/null | grep -A1 "^File '" | grep -v "^--" | paste - - | sed "s/File '//;s/'Lines executed:/ /"; \
	done; true

clean:
	rm -rf build $(BIN)

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- fuzzing (tests/fuzz/, docs/fuzzing.md) -------------------------------
# `make fuzz FUZZ_SECONDS=N`: every tests/fuzz/fuzz_NAME.c is a libFuzzer
# target, built with clang under ASan+UBSan into build/fuzz/ (its own
# objects: clang's coverage instrumentation must not mix with the gcc
# build's) and run for N seconds on a copy of tests/fuzz/corpus/NAME/, so
# that the checkout is never written to. A crash, a leak, an UBSan report or
# an input slower than FUZZ_TIMEOUT seconds fails the goal; the input is kept
# in build/fuzz/crashes/ and named. FUZZ_TARGETS="msg policy" runs some;
# FUZZ_SECONDS=0 runs each on its seeds only. FUZZ_OUT moves the logs and
# crashes, FUZZ_CORPUS the seeds (tests/test_fuzz.c uses both).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 10
FUZZ_TIMEOUT ?= 10
FUZZ_TARGETS ?=
FUZZ_BUILD   := build/fuzz
FUZZ_OUT     ?= $(FUZZ_BUILD)
FUZZ_CORPUS  ?= tests/fuzz/corpus
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# The gcc build's warnings, never as errors (CI=true's -Werror): clang warns
# where gcc does not, and the gcc build is the one that holds the code to
# its warnings; a fuzz run must not stop on one.
FUZZ_CFLAGS   = $(CSTD) -O1 -g $(filter-out -Werror,$(WARN)) $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                -I. $(PKG_CFLAGS) -MMD -MP
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer
# Every module but the programs' main(), and the targets' shared helpers
# (tests/fuzz/fuzz.c): a target links what it uses.
FUZZ_LIB_SRC := $(filter-out $(MAINS) agent/cell_agent.c,$(wildcard $(addsuffix /*.c,$(LAYERS) agent))) \
                tests/fuzz/fuzz.c
FUZZ_LIB_A   := $(FUZZ_BUILD)/libcellsched.a
FUZZ_SRC     := $(if $(FUZZ_TARGETS),$(FUZZ_TARGETS:%=tests/fuzz/fuzz_%.c),$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/bin/%)
FUZZ_FLAGS_FILE := $(FUZZ_BUILD)/flags
FUZZ_FLAGS_TEXT := $(FUZZ_CC) $(FUZZ_CFLAGS) | $(FUZZ_LDFLAGS) | $(LDLIBS) $(JSON_LIBS) $(RAFT_LIBS)

.PHONY: fuzz fuzz-deps
$(FUZZ_FLAGS_FILE): FORCE
	@mkdir -p $(@D)
	@printf '%s\n' '$(FUZZ_FLAGS_TEXT)' | cmp -s - $@ || printf '%s\n' '$(FUZZ_FLAGS_TEXT)' > $@

$(FUZZ_BUILD)/obj/%.o: %.c $(FUZZ_FLAGS_FILE) | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_LIB_A): $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

# clang and libFuzzer are needed only here: named when missing (make deps
# does not install them; ./test.sh does, with tools/deps.sh install fuzz).
fuzz-deps:
	@FUZZ_CC='$(FUZZ_CC)' sh tools/deps.sh check fuzz

$(FUZZ_BUILD)/bin/%: $(FUZZ_BUILD)/obj/tests/fuzz/%.o $(FUZZ_LIB_A) $(FUZZ_FLAGS_FILE) | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) $< $(FUZZ_LIB_A) -o $@ $(LDLIBS) $(JSON_LIBS) $(RAFT_LIBS)

fuzz: $(FUZZ_BIN)
	@FUZZ_OUT='$(FUZZ_OUT)' FUZZ_CORPUS='$(FUZZ_CORPUS)' sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TIMEOUT) $(FUZZ_BIN)

# The seed corpora, written with the real encoders by tests/fuzz/seeds.c
# (an ordinary program of the gcc build) and committed: rerun after a
# change of format. Marathon apps and the Kubernetes Policy are copied from
# ../shared/testdata when it is there. Only the folders it writes are
# replaced (other targets' seeds, e.g. msg_body's, are written by their
# authors), and in them the inputs that once found a bug (regress-*) kept.
FUZZ_TESTDATA ?= ../shared/testdata
.PHONY: fuzz-seeds
fuzz-seeds: $(BUILD)/tests/fuzz/seeds.o $(BUILD)/tests/fuzz/fuzz.o $(ALL_A)
	$(CC) $(LDFLAGS) $(filter %.o,$^) $(ALL_A) -o $(BUILD)/tests/fuzz/seeds $(LDLIBS) $(JSON_LIBS) $(RAFT_LIBS)
	rm -rf tests/fuzz/corpus.new
	$(BUILD)/tests/fuzz/seeds tests/fuzz/corpus.new $(FUZZ_TESTDATA)
	@for d in tests/fuzz/corpus.new/*/; do n=$$(basename $$d); \
	  for f in tests/fuzz/corpus/$$n/regress-*; do [ -e "$$f" ] && cp "$$f" $$d; done; \
	  rm -rf tests/fuzz/corpus/$$n && mv $$d tests/fuzz/corpus/$$n; done
	rm -rf tests/fuzz/corpus.new
