# Dev-only, sourced by the device scripts (tools/device/*.sh): the CUDA test
# binaries (CUDA_TESTS), cuda_build [more make targets] (the build with them,
# its log in $OUT/build.log; exits on failure) and cuda_run_tests (each test
# on the GPU, output in $OUT/tests.txt; prints the counts and any failure).
CUDA_TESTS="build/tests/test_cuda_ops build/tests/test_cuda build/tests/test_context build/tests/test_engine build/tests/test_generate"
cuda_build() {
    if [ -f .devbins.tar.xz ]; then prebuilt_unpack; return; fi
    tools/device/build.sh all "$@" $CUDA_TESTS > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
}
cuda_run_tests() {
    for t in $CUDA_TESTS; do LAGUNA_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-300}" $t; done > "$OUT/tests.txt" 2>&1
    echo "tests: $(grep -c '^PASS' "$OUT/tests.txt") passed, $(grep -c '^FAIL' "$OUT/tests.txt") failed"
    grep -B2 -A6 "^FAIL" "$OUT/tests.txt" | head -40
}
# A build made on the development machine (tools/device/prebuild.sh) and carried
# as .devbins.tar.xz saves the device its ~290 s cold build: the binaries go to
# build/, the Debian runtime libraries from .debs/ to /tmp/deps.
prebuilt_unpack() {
    mkdir -p /tmp/deps
    for f in .debs/*.deb; do dpkg -x "$f" /tmp/deps; done
    export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    tar xJf .devbins.tar.xz && rm -rf build && mv build-dev build || { echo "prebuilt: unpack failed"; exit 1; }
}
