#!/usr/bin/env bash
# Dev-only: builds, on the development machine, what the device scripts run
# (build-dev/, portable x86-64-v3 host code, the CUDA objects for sm_90) and
# packs it as .devbins.tar.xz for the device tool's carry; the device scripts
# unpack it instead of building (tools/device/cuda_tests.sh: only `all` and the CUDA
# tests, so scripts needing other targets build on the device; one xz thread with a
# dictionary larger than a binary, so the six binaries pack to ~13 MB). Usage:
# tools/device/prebuild.sh, then run(..., carry: [".devbins.tar.xz"]).
# BASE=<commit>: also that commit's laguna, built in a worktree under /tmp
# (kept for the next call), as build/laguna-base there, for interleaved A/B
# runs (tools/device/decode_ab.sh, variant BIN=build/laguna-base).
# BASE_BIN=<file>: that binary as build/laguna-base instead (one built
# earlier, e.g. before the working tree's changes).
# EXTRA="bench/serve_load ...": more targets (under build/) to build and pack.
# STRIP=0: keep the debug sections (stripped by default, to fit the carry).
set -euo pipefail
. tools/device/cuda_tests.sh
tests=${CUDA_TESTS//build\//build-dev/}
extra=
for t in ${EXTRA:-}; do extra="$extra build-dev/$t"; done
make -j"$(nproc)" BUILD=build-dev OPT="-O2 -march=x86-64-v3" all $tests $extra
if [ -n "${BASE:-}" ]; then
    sha=$(git rev-parse --short "$BASE")
    wt=/tmp/laguna-base-$sha
    [ -d "$wt" ] || git worktree add --detach "$wt" "$sha"
    make -C "$wt" -j"$(nproc)" BUILD=build-dev OPT="-O2 -march=x86-64-v3" build-dev/laguna
    cp "$wt/build-dev/laguna" build-dev/laguna-base
    extra="$extra build-dev/laguna-base"
elif [ -n "${BASE_BIN:-}" ]; then
    cp "$BASE_BIN" build-dev/laguna-base
    extra="$extra build-dev/laguna-base"
fi
# the binaries without their debug sections (STRIP=0: with them, for line
# numbers in compute-sanitizer's reports): the carry and the tree must fit
# the device tool's 64 MiB
stage=$(mktemp -d)
tar cf - build-dev/laguna $extra $tests | tar xf - -C "$stage"
[ "${STRIP:-1}" = 0 ] || strip --strip-debug "$stage"/build-dev/laguna "$stage"/build-dev/tests/* $(for t in $extra; do echo "$stage/$t"; done)
(cd "$stage" && tar cf - build-dev) | xz -T1 --lzma2=preset=6,dict=128MiB > .devbins.tar.xz
rm -rf "$stage"
ls -la .devbins.tar.xz
