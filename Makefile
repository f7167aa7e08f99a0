# laguna.c build. `make` builds the library, the CLI and the tests into build/;
# `make test` runs the suite; `make sanitize` builds and runs it under ASan+UBSan
# in build-san/; `make tsan` runs the threaded tests under ThreadSanitizer in
# build-tsan/. Every .c file under src/ belongs to the library, every cli/*.c
# to the laguna program and every tests/test_*.c is its own test program.

BUILD   ?= build
CC      ?= cc
# PORTABLE=1: a binary for any x86-64 (no -march=native). The kernels that
# decide the speed (quantised and float products, attention, silu) are
# compiled per instruction set and chosen at run time, so on the machine that
# builds it it runs as fast as the native build (docs/performance.md).
ifeq ($(PORTABLE),1)
OPT     ?= -O2
endif
OPT     ?= -O2 -march=native
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wno-unused-parameter
DEPS_CFLAGS := $(shell pkg-config --cflags libcjson libpcre2-8 libutf8proc libmicrohttpd 2>/dev/null)
DEPS_LIBS   := $(shell pkg-config --libs libcjson libpcre2-8 libutf8proc libmicrohttpd 2>/dev/null || echo -lcjson -lpcre2-8 -lutf8proc -lmicrohttpd)
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) -fPIC -fno-semantic-interposition -ffp-contract=fast -fopenmp-simd -pthread -Iinclude -Isrc $(DEPS_CFLAGS) $(CUDA_CFLAGS) -MMD -MP
# libmvec: glibc's vector math (the sampler's exp on x86-64, src/runtime/sampler.c)
MVEC_LIBS := $(if $(filter x86_64,$(shell uname -m)),-lmvec)
LDLIBS  = $(DEPS_LIBS) $(CUDA_LIBS) $(MVEC_LIBS) -lm -pthread
# The laguna program alone also needs libedit (line editing in chat).
CLI_LIBS := $(shell pkg-config --libs libedit 2>/dev/null || echo -ledit)

LIB_SRC  := $(shell find src -name '*.c' | sort)
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_LIB_SRC := $(filter-out tests/test_%.c,$(wildcard tests/*.c))
BENCH_SRC := $(wildcard bench/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)

# The CUDA backend (src/backend/cuda/*.cu) is built when nvcc is found
# (/usr/local/cuda/bin/nvcc or on PATH) unless NO_CUDA=1; without it
# `--device cuda` says the build has no CUDA. The CUDA runtime is linked
# statically, so the programs start (and report "no CUDA device") on
# machines without a GPU or driver.
NVCC ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
ifneq ($(NVCC),)
ifneq ($(NO_CUDA),1)
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O2 -std=c++20 $(CUDA_ARCH) -Xcompiler -fPIC,-Wall,-Wno-unused-parameter
LIB_OBJ  += $(patsubst %.cu,$(BUILD)/%.o,$(wildcard src/backend/cuda/*.cu src/parallel/*.cu))
# Hopper's warpgroup products (wgmma) exist only for the arch-specific sm_90a
# target: the files that use them are built for it alone.
$(BUILD)/src/backend/cuda/cuda_matmul_wgmma.o: CUDA_ARCH := -gencode arch=compute_90a,code=sm_90a
$(BUILD)/src/backend/cuda/cuda_matmul_wgmma_packed.o: CUDA_ARCH := -gencode arch=compute_90a,code=sm_90a
CUDA_CFLAGS := -DLAGUNA_CUDA
# Several GPUs (src/parallel/comm_nccl.cu) when the toolkit has nccl.h; libnccl
# itself is opened at run time, so nothing more is linked.
NCCL_FLAGS := $(if $(wildcard $(CUDA_HOME)/include/nccl.h),-DLAGUNA_NCCL)
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++
endif
endif
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_LIB_OBJ := $(TEST_LIB_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/liblaguna.a
SONAME   := liblaguna.so.0
SHLIB    := $(BUILD)/$(SONAME)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test sanitize tsan clean format bench install uninstall
.SECONDARY:
all: $(LIB) $(SHLIB) $(BUILD)/laguna $(TEST_BIN)

# Objects are rebuilt when the compiler or its flags change: $(BUILD)/cflags
# keeps the command line they were built with. `make install` leaves it be:
# it installs what was built (say by `make sanitize`), with the flags it was
# built with, rather than rebuilding it with its own command line's.
FLAGS_FILE := $(BUILD)/cflags
ifeq ($(filter install uninstall,$(MAKECMDGOALS)),)
$(shell mkdir -p $(BUILD) && echo '$(CC) $(ALL_CFLAGS)' | cmp -s - $(FLAGS_FILE) || echo '$(CC) $(ALL_CFLAGS)' >$(FLAGS_FILE))
endif
$(FLAGS_FILE):
	@mkdir -p $(dir $@)
	echo '$(CC) $(ALL_CFLAGS)' >$@

$(BUILD)/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu $(wildcard src/backend/cuda/*.h) src/backend/backend.h src/parallel/comm.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(NCCL_FLAGS) -Iinclude -Isrc $(DEPS_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library exports the laguna_* API and nothing else (src/liblaguna.map).
$(SHLIB): $(LIB_OBJ) src/liblaguna.map
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/liblaguna.map -Wl,--as-needed \
	    -o $@ $(LIB_OBJ) $(LDLIBS)

# `make install [PREFIX=/usr/local] [DESTDIR=]`: headers, both libraries, the
# laguna program and laguna.pc (pkg-config) under $(DESTDIR)$(PREFIX).
PREFIX  ?= /usr/local
VERSION := $(shell sed -n 's/^\#define LAGUNA_VERSION "\(.*\)"/\1/p' include/laguna.h)
install: $(LIB) $(SHLIB) $(BUILD)/laguna
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/*.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/liblaguna.so
	install -m 755 $(BUILD)/laguna $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@CUDA_LIBS@|$(CUDA_LIBS)|' src/laguna.pc.in >$(DESTDIR)$(PREFIX)/lib/pkgconfig/laguna.pc

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/include/,$(notdir $(wildcard include/*.h))) \
	    $(DESTDIR)$(PREFIX)/lib/liblaguna.a $(DESTDIR)$(PREFIX)/lib/$(SONAME) $(DESTDIR)$(PREFIX)/lib/liblaguna.so \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/laguna.pc $(DESTDIR)$(PREFIX)/bin/laguna

$(BUILD)/laguna: $(CLI_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS) $(CLI_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_LIB_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(TEST_LIB_OBJ) $(LIB) $(LDLIBS)

# Benchmark programs (bench/*.c), built on demand: `make bench`.
bench: $(BENCH_BIN)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# serve_load opens models as the CLI does (cli/text_input.c: a folder or a GGUF file)
$(BUILD)/bench/serve_load: $(BUILD)/bench/serve_load.o $(BUILD)/cli/text_input.o $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

test: all
	BUILD=$(BUILD) tests/run.sh

sanitize:
	$(MAKE) BUILD=build-san NO_CUDA=1 OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# The threaded tests under ThreadSanitizer: the thread pool stress test and the
# engine on every fixture at 1 and 3 threads (the whole suite takes ~20 minutes
# under TSan on two cores; these take under a minute).
TSAN_TESTS := test_threadpool test_engine test_variants test_context test_parallel test_server
tsan:
	$(MAKE) BUILD=build-tsan NO_CUDA=1 OPT="-O1 -g -fsanitize=thread" $(TSAN_TESTS:%=build-tsan/tests/%)
	@for t in $(TSAN_TESTS); do \
	    if build-tsan/tests/$$t >build-tsan/$$t.log 2>&1; then echo "tsan ok   $$t"; \
	    else cat build-tsan/$$t.log; echo "tsan FAIL $$t"; exit 1; fi; done

# Fuzzing (tests/fuzz/): one libFuzzer harness per parser. `make fuzz` builds
# them with clang, ASan+UBSan and libFuzzer in build-fuzz/ and runs each for
# FUZZ_SECONDS (new inputs go to build-fuzz/corpus/NAME, seeds come from
# tests/fuzz/corpus/NAME); FUZZ=name runs one. `make fuzz-replay` builds the
# same harnesses with the default compiler under ASan+UBSan (build-san/,
# shared with `make sanitize`) and runs the committed corpus and the
# regression inputs (where a harness has any) once each: deterministic, for CI.
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ       ?= $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_SECONDS ?= 300
FUZZ_CC    ?= clang
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
.PHONY: fuzz fuzz-replay

$(BUILD)/fuzz/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay_main.c $(wildcard tests/fuzz/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< tests/fuzz/replay_main.c $(LIB) $(LDLIBS)

fuzz:
	$(MAKE) BUILD=build-fuzz NO_CUDA=1 CC=$(FUZZ_CC) \
	    OPT="-O1 -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	    $(FUZZ:%=build-fuzz/fuzz/%)
	@for t in $(FUZZ); do \
	    mkdir -p build-fuzz/corpus/$$t; \
	    echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	    build-fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	        -dict=tests/fuzz/dict/$$t.dict -print_final_stats=1 \
	        build-fuzz/corpus/$$t tests/fuzz/corpus/$$t tests/fuzz/regressions/$$t \
	        >build-fuzz/$$t.log 2>&1 || { tail -60 build-fuzz/$$t.log; exit 1; }; \
	    grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|cov:" build-fuzz/$$t.log | tail -2; \
	done

fuzz-replay:
	$(MAKE) BUILD=build-san NO_CUDA=1 OPT="-O1 -fno-omit-frame-pointer $(FUZZ_SAN)" \
	    $(FUZZ:%=build-san/fuzz-replay/%)
	@for t in $(FUZZ); do \
	    printf "replay %-22s " $$t; \
	    inputs=tests/fuzz/corpus/$$t; \
	    [ -d tests/fuzz/regressions/$$t ] && inputs="$$inputs tests/fuzz/regressions/$$t"; \
	    build-san/fuzz-replay/$$t $$inputs \
	        >build-san/fuzz-replay/$$t.log 2>&1 || { echo; tail -40 build-san/fuzz-replay/$$t.log; exit 1; }; \
	    tail -1 build-san/fuzz-replay/$$t.log; \
	done

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(TEST_SRC) $(wildcard src/*/*.h include/*.h tests/*.h)

clean:
	rm -rf build build-san build-tsan

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(TEST_LIB_OBJ:.o=.d) $(BENCH_BIN:=.d)
