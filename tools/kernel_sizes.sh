#!/usr/bin/env bash
# Dev-only, on the development machine (needs nvcc, no GPU): the SASS size of
# every kernel in the given CUDA sources (default: all of src/backend/cuda),
# in instructions (16 bytes each), largest last. A decode kernel's warp runs
# its path once, so code that does not fit the SM's instruction cache costs
# fetch stalls (docs/performance.md, "CUDA, thirteenth pass").
# Usage: tools/kernel_sizes.sh [src/backend/cuda/cuda_matmul.cu ...]
set -euo pipefail
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(src/backend/cuda/*.cu)
for f in "${files[@]}"; do
    cubin="$tmp/$(basename "$f" .cu).cubin"
    "$NVCC" -O2 -std=c++20 -cubin -arch=sm_90 -Iinclude -Isrc $(pkg-config --cflags libcjson 2>/dev/null) "$f" -o "$cubin"
    # .text.<kernel> sections: name and size (hex bytes)
    readelf -S --wide "$cubin" 2>/dev/null |
        sed -n 's/.*\] \(\.text\.[^ ]*\) *[A-Z]* *[0-9a-f]* *[0-9a-f]* *\([0-9a-f]*\).*/\2 \1/p' |
        while read -r size name; do echo "$((16#$size / 16)) $(basename "$f") ${name#.text.}"; done
done | sort -n
