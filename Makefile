# switchboard - build, test, demo, bench. See README.md.
#
# Every target that needs Debian packages depends on `deps`, which installs only what is
# missing (apt-get; sudo when not root). Sanitizer builds live in their own trees:
#   build/        normal          (BUILD=build)
#   build/asan/   ASan + UBSan    (make asan)
#   build/tsan/   TSan            (make tsan)
# `make test` runs unit + integration suites in all three and prints one closing line.

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
SAN     ?=
OPT     ?= -O2 -g
FUZZ_SECONDS ?= 20

PKGS := libcurl libcjson libmicrohttpd ncursesw sqlite3 hiredis libssl libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wcast-qual -Wwrite-strings -Wundef -Wvla -Wpointer-arith -Wimplicit-fallthrough \
        -Wswitch-enum -Werror

ifeq ($(SAN),asan)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT := -O1 -g
else ifeq ($(SAN),tsan)
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPT := -O1 -g
else
SANFLAGS :=
endif

CPPFLAGS += -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS)
CFLAGS   += $(WARN) $(OPT) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS  += $(SANFLAGS) -pthread
LDLIBS   += $(PKG_LIBS) -lm

LIB_SRCS  := $(sort $(wildcard src/*/*.c))
SIM_SRCS  := $(sort $(wildcard tests/sim/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
SUPPORT_SRCS := $(sort $(wildcard tests/unit/support_*.c))

LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
SIM_OBJS  := $(SIM_SRCS:%.c=$(BUILD)/obj/%.o)
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libswitchboard.a
BIN       := $(BUILD)/switchboard
SIM       := $(BUILD)/switchboard-sim
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test test-suite unit integration asan tsan valgrind lint fuzz bench demo \
        install clean format docs
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BIN) $(SIM)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/src/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(SIM): $(SIM_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(SUPPORT_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# test_gateway_bigbody records which thread parses a chat body, hashes its prompt and frees it.
$(BUILD)/tests/test_gateway_bigbody: LDFLAGS += -Wl,--wrap=openai_request_parse \
	-Wl,--wrap=cache_prompt_hash -Wl,--wrap=llm_request_cleanup

deps:
	@bash .ci/deps build test

# ---- tests ---------------------------------------------------------------------------------
# test-suite: build one tree and run its unit + integration tests (no deps step).
test-suite: all $(UNIT_BINS)
	@bash tests/run.sh $(BUILD)

unit: all $(UNIT_BINS)
	@bash tests/run.sh $(BUILD) unit

integration: all
	@bash tests/run.sh $(BUILD) integration

asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=asan test-suite

tsan: deps
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=tsan test-suite

test: deps
	@rm -f build/results.txt build/asan/results.txt build/tsan/results.txt build/fuzz/results.txt
	@$(MAKE) --no-print-directory BUILD=build test-suite; \
	 $(MAKE) --no-print-directory BUILD=build/asan SAN=asan test-suite; \
	 $(MAKE) --no-print-directory BUILD=build/tsan SAN=tsan test-suite; \
	 bash tests/fuzz/run.sh regress; \
	 bash tests/summary.sh build build/asan build/tsan build/fuzz

valgrind: deps all $(UNIT_BINS)
	@bash tests/run.sh $(BUILD) valgrind

# ---- quality -------------------------------------------------------------------------------
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(FORMAT_FILES)

lint: deps
	@bash .ci/lint

fuzz: deps
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

# Regenerates the README's configuration reference from the schema tables.
docs: $(BIN)
	@$(BIN) check --reference > $(BUILD)/ref.md
	@awk -v ref=$(BUILD)/ref.md '/<!-- config-reference:start -->/ { print; \
	   while ((getline l < ref) > 0) print l; skip = 1; next } \
	   /<!-- config-reference:end -->/ { skip = 0 } !skip' README.md > $(BUILD)/README.md
	@mv $(BUILD)/README.md README.md

# ---- running -------------------------------------------------------------------------------
demo:
	@bash .ci/deps build demo
	@$(MAKE) --no-print-directory all
	@DEMO_FLEET=$(FLEET) bash tests/demo/run.sh $(BUILD)

# bench-tools: tests/bench/*.c (the benchmark's own upstream), one binary each in $(BUILD).
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/%,$(wildcard tests/bench/*.c))
.PHONY: bench-tools
bench-tools: $(BENCH_BINS)

$(BENCH_BINS): $(BUILD)/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -D_GNU_SOURCE $(WARN) $(OPT) $(BENCH_CFLAGS_$*) -o $@ $< $(BENCH_SRCS_$*) $(BENCH_LIBS_$*)

# A bench tool's own modules (tests/bench/TOOL/*.c), compiled with it.
BENCH_SRCS_eventgap := tests/bench/eventgap/parse.c
$(BUILD)/eventgap: $(BENCH_SRCS_eventgap) tests/bench/eventgap/parse.h

BENCH_LIBS_floor := -lmicrohttpd -lcurl -lpthread
# encode: the encoders' worst case, linked with the library itself.
$(BUILD)/encode: $(LIB)
BENCH_CFLAGS_encode := -Iinclude $(PKG_CFLAGS) -pthread
BENCH_LIBS_encode := $(LIB) $(PKG_LIBS) -lm -pthread
# relay: per-event CPU of the stream relay (passthrough vs parse and re-encode), likewise.
$(BUILD)/relay: $(LIB)
BENCH_CFLAGS_relay := -Iinclude $(PKG_CFLAGS) -pthread
BENCH_LIBS_relay := $(LIB) $(PKG_LIBS) -lm -pthread
# qrefresh: CPU of one quality refresh, SQL recount against minute buckets, likewise.
$(BUILD)/qrefresh: $(LIB)
BENCH_CFLAGS_qrefresh := -Iinclude $(PKG_CFLAGS) -pthread
BENCH_LIBS_qrefresh := $(LIB) $(PKG_LIBS) -lm -pthread

bench:
	@bash .ci/deps build bench
	@$(MAKE) --no-print-directory BUILD=build/bench OPT='-O2 -DNDEBUG' all bench-tools
	@bash tests/bench/run.sh build/bench

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/switchboard/themes
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/switchboard
	install -m 0644 console.json.example $(DESTDIR)$(PREFIX)/share/switchboard/
	-install -m 0644 themes/*.json $(DESTDIR)$(PREFIX)/share/switchboard/themes/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
