# publisher — build, run, test.
#
#   make run        install what is missing, build, start with the synthetic feed
#   make test       install what is missing, build, run every test
#   make bench      build and run the benchmarks (they print figures)
#   make SANITIZER=address,undefined test     the same under ASan+UBSan
#
# Objects go to build/ (build-asan/ etc. with a sanitizer) with -MMD -MP
# dependency files, so a header change rebuilds what includes it.

CC ?= cc
SANITIZER ?=
# COVERAGE=1: built with gcov counters into build-coverage (make coverage).
COVERAGE ?=
comma := ,
BUILD := build$(if $(SANITIZER),-$(subst $(comma),-,$(SANITIZER)))$(if $(COVERAGE),-coverage)

PKGS := libwebsockets libuv jansson sqlite3 libssl libcrypto zlib
TEST_PKGS := cmocka

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
OPT := -O2 -g
CFLAGS_ALL := -std=gnu11 $(OPT) $(WARN) -pthread -MMD -MP -Ipublisher -Ifeeds
ifneq ($(SANITIZER),)
CFLAGS_ALL += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_ALL += -fsanitize=$(SANITIZER)
endif
ifneq ($(COVERAGE),)
CFLAGS_ALL += --coverage
LDFLAGS_ALL += --coverage
endif

# pkg-config is asked lazily, after `deps` has had the chance to install.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

# Modules. ENGINE_SRC has no lws and no SQL: units and benches link it alone.
ENGINE_SRC := publisher/decimal.c publisher/tick.c publisher/jsonbuf.c publisher/symbol_state.c \
	publisher/state_table.c publisher/engine.c publisher/engine_group.c publisher/engine_fanout.c \
	publisher/engine_subscribe.c publisher/engine_encode.c
# Text formats every side shares, with no lws and no SQL: times (time_parse)
# and the tick file, read and written (tick_file), and the progress line of
# the long runs that read and write tick files (progress).
CODEC_SRC := publisher/time_parse.c publisher/tick_file_read.c publisher/tick_file_write.c \
	publisher/progress.c
PROTOCOL_SRC := publisher/protocol.c
# Trading sessions: the --session rules and the time zone files they read
# (no lws, no SQL; the engine folds with their rule, knowing nothing of them).
SESSION_SRC := publisher/time_zone.c publisher/trading_session.c
FEED_SRC := publisher/tick_queue.c feeds/feed.c feeds/feed_synthetic.c feeds/feed_stdin.c \
	feeds/feed_replay.c feeds/replay_read.c feeds/replay_pace.c \
	feeds/replay_seek.c feeds/feed_tcp.c
REDIS_LINK_SRC := publisher/redis_wire.c publisher/redis_publisher.c publisher/redis_publisher_sink.c \
	publisher/redis_ingest_start.c publisher/redis_follower.c
SERVER_SRC := publisher/cli.c publisher/settings.c publisher/log.c publisher/query.c publisher/auth.c \
	publisher/server.c publisher/ws.c publisher/admission.c publisher/http_api.c publisher/metrics.c \
	publisher/server_figures.c publisher/http_status.c \
	publisher/session.c publisher/http_query.c publisher/utf8.c \
	publisher/http_stream.c publisher/http_stream_session.c publisher/http_stream_write.c \
	publisher/http_stream_ticket.c publisher/stream_outbox.c \
	publisher/pipeline.c publisher/pipeline_seqs.c publisher/pipeline_rewind.c \
	publisher/seq_gate.c publisher/epoch.c publisher/wake.c \
	publisher/ws_deflate.c \
	$(REDIS_LINK_SRC)
MAIN_SRC := publisher/main.c
# The SQLite store and export. The SQL of schema/NNN_name.sql is compiled in:
# schema/embed.sh turns it into $(SCHEMA_OBJ), linked wherever STORE_SRC is.
STORE_CORE_SRC := publisher/store.c publisher/store_sql.c publisher/store_sink.c \
	publisher/store_reserve.c \
	publisher/store_write.c publisher/store_read.c publisher/store_import.c \
	publisher/store_rewind.c
STORE_SRC := $(STORE_CORE_SRC) publisher/export.c publisher/import.c
ALL_SRC := $(ENGINE_SRC) $(CODEC_SRC) $(PROTOCOL_SRC) $(SESSION_SRC) $(FEED_SRC) $(SERVER_SRC) $(MAIN_SRC) $(STORE_SRC)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

BIN := $(BUILD)/publisher
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
BENCHES := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/bench_*.c))

PYTHON := /usr/bin/python3
LISTEN ?= 127.0.0.1:8080
DB ?= data/ticks.db

.PHONY: all deps run test unit integration bench clean format check-format
all: deps $(BIN)

$(BIN): $(call obj,$(ALL_SRC))
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(REDIS_LIBS) -pthread -lm

# The migrations, in number order, as a C array (schema/schema_sql.h). The
# object is kept out of ALL_SRC (which `format` runs over) and added to the
# links that need it.
SCHEMA_SQL := $(sort $(wildcard schema/[0-9][0-9][0-9]_*.sql))
SCHEMA_OBJ := $(BUILD)/obj/schema_sql.o
$(BUILD)/obj/schema_sql.c: schema/embed.sh $(SCHEMA_SQL)
	@mkdir -p $(dir $@)
	sh schema/embed.sh $(SCHEMA_SQL) > $@.tmp && mv $@.tmp $@
$(SCHEMA_OBJ): $(BUILD)/obj/schema_sql.c
	$(CC) $(CFLAGS_ALL) -Ischema -c -o $@ $<
$(BIN): $(SCHEMA_OBJ)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS) -c -o $@ $<

# Tests and benchmarks include their shared helpers as "support/x.h".
$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests $(PKG_CFLAGS) $(TEST_CFLAGS) -c -o $@ $<

# Tests and benchmarks link against libpublisher.a, every object of ALL_SRC
# but main's plus the compiled-in schema, and libsupport.a, the helpers of
# tests/support/. The linker takes from an archive only the objects that
# resolve a symbol still missing, so a unit test still links its module and
# what that module calls, nothing else; a new tests/unit/test_foo.c (or
# tests/bench/bench_foo.c) needs no line here. Every link names every
# library: an unused one costs nothing.
LIB := $(BUILD)/libpublisher.a
LIB_OBJ := $(call obj,$(filter-out $(MAIN_SRC),$(ALL_SRC))) $(SCHEMA_OBJ)
$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

SUPPORT_LIB := $(BUILD)/libsupport.a
SUPPORT_OBJ := $(patsubst tests/support/%.c,$(BUILD)/support/%.o,$(wildcard tests/support/*.c))
$(BUILD)/support/%.o: tests/support/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests $(PKG_CFLAGS) $(TEST_CFLAGS) -c -o $@ $<
$(SUPPORT_LIB): $(SUPPORT_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# Helpers first: they call into libpublisher.a.
LINK_LIBS = $(SUPPORT_LIB) $(LIB) $(PKG_LIBS) $(REDIS_LIBS)
$(UNIT_TESTS): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(SUPPORT_LIB) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LINK_LIBS) $(TEST_LIBS) -pthread -lm

$(BUILD)/bench/%.o: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests $(PKG_CFLAGS) -c -o $@ $<
$(BENCHES): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(SUPPORT_LIB) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LINK_LIBS) -pthread -lm

# Scale-out through Redis: publisher/redis_*.c and what they need.
# hiredis is asked for only here: its cflags put /usr/include/hiredis on the
# include path, where its async.h, read.h, sds.h and alloc.h would shadow
# project headers of the same name (we include <hiredis/hiredis.h>). The
# test and the bench start their own redis-server (tests/deps.sh installs it).
REDIS_PKGS := hiredis
REDIS_CFLAGS = $(shell pkg-config --cflags $(REDIS_PKGS) 2>/dev/null)
REDIS_LIBS = $(shell pkg-config --libs $(REDIS_PKGS) 2>/dev/null)
$(call obj,$(REDIS_LINK_SRC)) $(BUILD)/tests/test_redis_link.o $(BUILD)/bench/bench_redis.o \
	$(BUILD)/support/redis_server.o: PKG_CFLAGS += $(REDIS_CFLAGS)

# The side-by-side suite: a tick generator, a many-connection
# WebSocket subscriber and a NATS bridge, driven by tests/bench/run-suite.sh
# against publisher, nats-server, a Node ws broadcaster and Socket.IO.
#   make bench-suite                 the default matrix, under 10 minutes
#   make bench-suite BENCH_FULL=1    the whole matrix (30–60 minutes)
# Results go to tests/bench/results/; see tests/bench/README.md.
BENCH_TOOLS := $(BUILD)/bench/tickgen $(BUILD)/bench/subload $(BUILD)/bench/nats-bridge \
	$(BUILD)/bench/nchan-bridge $(BUILD)/bench/sendbase
# zlib: subload inflates compressed frames (--deflate).
$(BENCH_TOOLS): $(BUILD)/bench/%: $(BUILD)/bench/%.o
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lz -lm
# subload reads Server-Sent Events (--transport sse) with subload_sse.c.
$(BUILD)/bench/subload: $(BUILD)/bench/subload_sse.o

.PHONY: bench-suite bench-tools
bench-tools: $(BENCH_TOOLS)

bench-suite: all $(BENCH_TOOLS)
	@BENCH_BUILD=$(CURDIR)/$(BUILD) ./tests/bench/run-suite.sh

# Fuzzing with libFuzzer (clang): one binary per tests/fuzz/fuzz_*.c, built
# with ASan+UBSan into build-fuzz/ from the module sources it exercises.
#   make fuzz                    each target for FUZZ_SECONDS (default 60)
#   make fuzz FUZZ_MERGE=1       ... and merge new inputs into the seed corpus
#   make fuzz-check              each target once over its seed corpus
# A target fuzzes a scratch copy of tests/fuzz/corpus/<target>/, so a run
# leaves the repository as it was unless FUZZ_MERGE is set. A crash stops the
# run and leaves its input in build-fuzz/<target>-crash-*.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MERGE ?=
FUZZ_BUILD := build-fuzz
FUZZ_PKGS := jansson libcrypto
FUZZ_CFLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	$(WARN) -Ipublisher -Ifeeds
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_BUILD)/fuzz_protocol: $(PROTOCOL_SRC) $(CODEC_SRC) publisher/jsonbuf.c publisher/tick.c publisher/decimal.c
$(FUZZ_BUILD)/fuzz_decimal: publisher/decimal.c
$(FUZZ_BUILD)/fuzz_tick_jsonl $(FUZZ_BUILD)/fuzz_tick_csv: tests/fuzz/tick_fuzz.h \
	publisher/tick.c publisher/decimal.c $(CODEC_SRC) publisher/jsonbuf.c
$(FUZZ_BUILD)/fuzz_jwt: publisher/auth.c publisher/log.c publisher/tick.c
$(FUZZ_BUILD)/fuzz_http_query: publisher/http_query.c $(PROTOCOL_SRC) $(CODEC_SRC) publisher/jsonbuf.c \
	publisher/tick.c publisher/decimal.c
$(FUZZ_TARGETS): $(FUZZ_BUILD)/%: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $$(pkg-config --cflags $(FUZZ_PKGS)) -o $@ $(filter %.c,$^) \
		$$(pkg-config --libs $(FUZZ_PKGS)) -lm

.PHONY: fuzz fuzz-build fuzz-check
fuzz-build: deps $(FUZZ_TARGETS)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		name=$${t##*/}; seeds=tests/fuzz/corpus/$$name; \
		work=$$(mktemp -d) || exit 1; \
		cp $$seeds/* $$work/ 2>/dev/null; \
		dict=; [ -f tests/fuzz/$$name.dict ] && dict=-dict=tests/fuzz/$$name.dict; \
		echo "== $$name: $(FUZZ_SECONDS) s"; \
		./$$t $$dict -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/$$name- $$work 2>$(FUZZ_BUILD)/$$name.log; \
		rc=$$?; tail -n 12 $(FUZZ_BUILD)/$$name.log | grep -E '^(#|stat::|==|SUMMARY)' ; \
		if [ $$rc -ne 0 ]; then echo "FAILED: $$name (log: $(FUZZ_BUILD)/$$name.log)"; \
			rm -rf $$work; exit 1; fi; \
		if [ -n "$(FUZZ_MERGE)" ]; then ./$$t -merge=1 $$seeds $$work 2>>$(FUZZ_BUILD)/$$name.log; fi; \
		rm -rf $$work; \
	done; \
	echo "fuzz: $(words $(FUZZ_TARGETS)) passed, 0 failed"

fuzz-check: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		name=$${t##*/}; \
		./$$t -runs=0 tests/fuzz/corpus/$$name 2>$(FUZZ_BUILD)/$$name.check.log || \
			{ echo "FAILED: $$name (log: $(FUZZ_BUILD)/$$name.check.log)"; exit 1; }; \
		echo "$$name: $$(ls tests/fuzz/corpus/$$name | wc -l) seeds ok"; \
	done

# Install what is missing (Debian 12): apt-get, with sudo when not root.
deps:
	@./tests/deps.sh

run: all
	@mkdir -p $(dir $(DB))
	@echo "publisher: dashboard at http://$(LISTEN)/  (Ctrl-C to stop)"
	./$(BIN) serve --listen $(LISTEN) --db $(DB) --feed synthetic

# Install as servers do: the binary, the dashboard's files, a commented
# example config (an existing one is kept; the new one goes beside it as
# .example) and a systemd unit that runs `publisher serve --config`.
#   make install                          under /usr/local
#   make install PREFIX=/usr DESTDIR=pkg  staged, for a package
# STATEDIR is where the unit's StateDirectory= puts the database: systemd
# makes it, so it is /var/lib whatever PREFIX says.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
STATEDIR ?= /var/lib
INSTALL ?= install
INSTALL_PATHS = -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@STATEDIR@|$(STATEDIR)|g'
CONF_DEST = $(DESTDIR)$(SYSCONFDIR)/publisher/publisher.conf

.PHONY: install uninstall
install: all
	$(INSTALL) -D -m 755 $(BIN) $(DESTDIR)$(BINDIR)/publisher
	cd web && find . -type f | while read -r f; do \
		$(INSTALL) -D -m 644 "$$f" "$(DESTDIR)$(DATADIR)/publisher/web/$$f" || exit 1; done
	sed $(INSTALL_PATHS) dist/publisher.conf.in > $(BUILD)/publisher.conf
	@if [ -e $(CONF_DEST) ]; then \
		echo "kept $(CONF_DEST); the new example is $(CONF_DEST).example"; \
		$(INSTALL) -m 644 $(BUILD)/publisher.conf $(CONF_DEST).example; \
	else \
		$(INSTALL) -D -m 644 $(BUILD)/publisher.conf $(CONF_DEST); \
	fi
	sed $(INSTALL_PATHS) dist/publisher.service.in > $(BUILD)/publisher.service
	$(INSTALL) -D -m 644 $(BUILD)/publisher.service $(DESTDIR)$(UNITDIR)/publisher.service
	@echo "installed: $(BINDIR)/publisher, settings in $(SYSCONFDIR)/publisher/publisher.conf"

# The config and the data stay: they are the user's.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/publisher $(DESTDIR)$(UNITDIR)/publisher.service
	rm -rf $(DESTDIR)$(DATADIR)/publisher/web

unit: all $(UNIT_TESTS)
	@./tests/run-units.sh $(UNIT_TESTS)

integration: all
	@PUBLISHER_BIN=$(CURDIR)/$(BIN) $(PYTHON) tests/integration/run.py

# The dashboard's modules that have no DOM (web/js/), under node:test: no
# server, no browser, no npm packages.
.PHONY: js
js:
	@node --test --test-reporter=spec tests/web/*.test.mjs

# The client library (web/client/publisher.js) against the real binary over
# WebSocket, SSE and long-poll, and its choice of transport behind proxies
# that get in the way (tests/client/). Node 20 needs the flag for its
# WebSocket.
.PHONY: client-test
client-test: all
	@PUBLISHER_BIN=$(CURDIR)/$(BIN) node --experimental-websocket --test --test-reporter=spec tests/client/*.test.mjs

test: unit integration browser js client-test

# Line coverage of publisher/ and feeds/ by the unit, integration and
# browser tests (gcov): a line per file, then the total.
.PHONY: coverage
coverage:
	@find build-coverage -name '*.gcda' -delete 2>/dev/null || true
	@$(MAKE) --no-print-directory COVERAGE=1 unit integration browser
	@./tests/tools/coverage.sh build-coverage

bench: all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; ./$$b || exit 1; done

format:
	clang-format -i $(ALL_SRC) $(wildcard publisher/*.h feeds/*.h tests/unit/*.c tests/bench/*.c tests/support/*.[ch])

clean:
	rm -rf build build-*

# The dashboard's chart library, vendored so the page runs with no build
# step and no network: the standalone production build of TradingView
# Lightweight Charts (Apache-2.0) with its LICENSE, VERSION and NOTICE.
# `make vendor` refreshes it from npm (newest 5.x unless LWC_VERSION says).
LWC_VERSION ?= 5
LWC_DIR := web/vendor/lightweight-charts
.PHONY: vendor
vendor:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd "$$tmp" && npm pack --silent lightweight-charts@$(LWC_VERSION) >/dev/null && \
	tar -xzf lightweight-charts-*.tgz && cd - >/dev/null && \
	ver=$$(node -p "require('$$tmp/package/package.json').version") && \
	mkdir -p $(LWC_DIR) && \
	cp "$$tmp/package/dist/lightweight-charts.standalone.production.js" "$$tmp/package/LICENSE" $(LWC_DIR)/ && \
	echo "$$ver" > $(LWC_DIR)/VERSION && \
	{ echo "TradingView Lightweight Charts(TM) $$ver"; \
	  echo "Copyright (c) TradingView, Inc. - https://www.tradingview.com/"; \
	  echo "Licensed under the Apache License, Version 2.0 (see LICENSE in this folder)."; \
	  echo ""; \
	  echo "File: lightweight-charts.standalone.production.js, unmodified, from the npm"; \
	  echo "package lightweight-charts@$$ver (it bundles fancy-canvas, MIT, and parts of"; \
	  echo "tslib, 0BSD). Refreshed by 'make vendor'."; \
	  echo ""; \
	  echo "Attribution: the dashboard links https://www.tradingview.com/ in its status"; \
	  echo "bar (\"Charts: TradingView Lightweight Charts\"), as the licence asks; the"; \
	  echo "chart's own logo is off because it injects an inline <style> the CSP forbids."; \
	  echo "sha256 $$(sha256sum $(LWC_DIR)/lightweight-charts.standalone.production.js | cut -d' ' -f1)"; \
	} > $(LWC_DIR)/NOTICE && \
	echo "vendored lightweight-charts $$ver into $(LWC_DIR)"

# The dashboard (run.mjs), the status page (status.mjs), the dashboard
# behind nginx proxies that refuse WebSocket, refuse event streams or buffer
# responses (transports.mjs) and the dashboard's one clock, replay controls,
# symbols and decimals (clock.mjs) in real headless Chromium (Debian's
# /usr/bin/chromium; npm playwright-core, which never downloads a browser).
# Every script runs; the target fails if any did. npm ci runs only when
# node_modules is missing or older than the lockfile.
.PHONY: browser
browser: all
	@cd tests/browser && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || \
		npm ci --silent --no-audit --no-fund; }
	@cd tests/browser && rc=0; for t in run.mjs status.mjs transports.mjs clock.mjs screens.mjs; do \
		echo "== tests/browser/$$t"; PUBLISHER_BIN=$(CURDIR)/$(BIN) node $$t || rc=1; done; exit $$rc

-include $(shell find build* -name '*.d' 2>/dev/null)
