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
comma := ,
BUILD := build$(if $(SANITIZER),-$(subst $(comma),-,$(SANITIZER)))

PKGS := libwebsockets jansson sqlite3
TEST_PKGS := cmocka

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
OPT := -O2 -g
CFLAGS_ALL := -std=gnu11 $(OPT) $(WARN) -pthread -MMD -MP -Ipublisher -Ifeeds
ifneq ($(SANITIZER),)
CFLAGS_ALL += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_ALL += -fsanitize=$(SANITIZER)
endif

# pkg-config is asked lazily, after `deps` has had the chance to install.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

# Modules. ENGINE_SRC has no lws and no SQL: units and benches link it alone.
ENGINE_SRC := publisher/decimal.c publisher/tick.c publisher/jsonbuf.c publisher/engine.c
PROTOCOL_SRC := publisher/protocol.c
FEED_SRC := publisher/tick_queue.c feeds/feed.c feeds/feed_synthetic.c feeds/tick_parse.c feeds/feed_stdin.c
SERVER_SRC := publisher/cli.c publisher/log.c publisher/server.c
MAIN_SRC := publisher/main.c
ALL_SRC := $(ENGINE_SRC) $(PROTOCOL_SRC) $(FEED_SRC) $(SERVER_SRC) $(MAIN_SRC)

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
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) -pthread -lm

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS) $(TEST_CFLAGS) -c -o $@ $<

# A unit test binary links its own module only (see STYLE.md).
$(BUILD)/tests/test_decimal: $(BUILD)/tests/test_decimal.o $(call obj,publisher/decimal.c)
$(BUILD)/tests/test_jsonbuf: $(BUILD)/tests/test_jsonbuf.o $(call obj,publisher/decimal.c publisher/jsonbuf.c)
$(BUILD)/tests/test_engine: $(BUILD)/tests/test_engine.o $(call obj,$(ENGINE_SRC))
$(BUILD)/tests/test_protocol: $(BUILD)/tests/test_protocol.o $(call obj,$(ENGINE_SRC) $(PROTOCOL_SRC))
$(BUILD)/tests/test_cli: $(BUILD)/tests/test_cli.o $(call obj,publisher/cli.c publisher/decimal.c publisher/tick.c $(PROTOCOL_SRC) publisher/jsonbuf.c)
$(BUILD)/tests/test_tick_queue: $(BUILD)/tests/test_tick_queue.o $(call obj,publisher/tick_queue.c publisher/tick.c publisher/decimal.c)
$(BUILD)/tests/test_feed: $(BUILD)/tests/test_feed.o $(call obj,$(FEED_SRC) publisher/tick.c publisher/decimal.c publisher/log.c $(PROTOCOL_SRC) publisher/jsonbuf.c)
$(BUILD)/tests/test_tick_parse: $(BUILD)/tests/test_tick_parse.o $(call obj,feeds/tick_parse.c publisher/tick.c publisher/decimal.c publisher/protocol.c publisher/jsonbuf.c)
$(UNIT_TESTS):
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) -pthread -lm

$(BUILD)/bench/%.o: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS) -c -o $@ $<
$(BUILD)/bench/bench_engine: $(BUILD)/bench/bench_engine.o $(call obj,$(ENGINE_SRC))
$(BUILD)/bench/bench_parse: $(BUILD)/bench/bench_parse.o $(call obj,feeds/tick_parse.c publisher/tick.c publisher/decimal.c publisher/protocol.c publisher/jsonbuf.c)
$(BENCHES):
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) -pthread -lm

# Install what is missing (Debian 12): apt-get, with sudo when not root.
deps:
	@./tests/deps.sh

run: all
	@mkdir -p $(dir $(DB))
	@echo "publisher: dashboard at http://$(LISTEN)/  (Ctrl-C to stop)"
	./$(BIN) serve --listen $(LISTEN) --db $(DB) --feed synthetic

unit: all $(UNIT_TESTS)
	@./tests/run-units.sh $(UNIT_TESTS)

integration: all
	@PUBLISHER_BIN=$(CURDIR)/$(BIN) $(PYTHON) tests/integration/run.py

test: unit integration

bench: all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; ./$$b || exit 1; done

format:
	clang-format -i $(ALL_SRC) $(wildcard publisher/*.h feeds/*.h tests/unit/*.c tests/bench/*.c)

clean:
	rm -rf build build-*

-include $(shell find build* -name '*.d' 2>/dev/null)
