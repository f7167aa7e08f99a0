#!/usr/bin/env bash
# Dev-only, through the device tool: CUDA tests, then the issue's table on
# full 40-layer XS.2 shapes with random weights made on the GPU (bf16 and
# Q4_K_M), batched decode, and transformers beside laguna.c.
set -uo pipefail
T="build/tests/test_cuda build/tests/test_context"
tools/device/build.sh all $T > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
{ build/tests/test_cuda; LAGUNA_TEST_DEVICE=cuda build/tests/test_context; } > "$OUT/tests.txt" 2>&1
echo "tests: $(grep -c '^PASS' "$OUT/tests.txt") passed, $(grep -c '^FAIL' "$OUT/tests.txt") failed"
grep -B3 -A3 "^FAIL" "$OUT/tests.txt" | head -20
[ "${TESTS_ONLY:-0}" = 1 ] && exit 0
B="build/laguna bench --device cuda --synth xs2"
{
    $B --prompt 1024 --gen 64 --reps 3
    $B --type q4_k_m --prompt 1024 --gen 64 --reps 3
    $B --prompt 4096 --gen 32 --reps 1
    $B --prompt 256 --gen 32 --reps 1 --batch 1,8,32,128
} > "$OUT/bench.txt" 2>&1
grep -vE "^sampling" "$OUT/bench.txt"
[ "${NO_TRANSFORMERS:-0}" = 1 ] && exit 0
timeout 300 python3 bench/transformers_compare.py --preset xs2 --prompt 1024 --gen 32 --prefill 4096 --reps ${REPS:-2} > "$OUT/compare.txt" 2>&1
tail -15 "$OUT/compare.txt"
