#!/usr/bin/env bash
# Dev-only, through the device tool: the wgmma GEMM's checks
# (src/backend/cuda/cuda_matmul_wgmma.cu, on by default on compute capability
# 9.0 since the twenty-fourth pass; LAGUNA_CUDA_WGMMA=0 is the mma.sync GEMM).
# The per-op tests with it (the products' and experts' batch-invariance cases
# hold it bit for bit to the decode kernels, the rest to the reference),
# `laguna verify --device cuda` on the fixtures with it, then a 4096-token
# prefill timed with it and without, alternated, in both activation modes.
# TESTS_ONLY=1 stops after the checks.
set -uo pipefail
. tools/device/cuda_tests.sh
cuda_build bench
LAGUNA_CUDA_WGMMA=1 timeout 300 build/tests/test_cuda_ops > "$OUT/wgmma_ops.txt" 2>&1
echo "test_cuda_ops with wgmma: $(grep -c '^PASS' "$OUT/wgmma_ops.txt") passed, $(grep -c '^FAIL' "$OUT/wgmma_ops.txt") failed"
grep -B1 -A6 "check failed" "$OUT/wgmma_ops.txt" | head -60
LAGUNA_CUDA_WGMMA=1 bash tools/device/verify_all.sh
[ "${TESTS_ONLY:-0}" = 1 ] && exit 0
B="build/laguna bench --device cuda --synth xs2 --probe-mib 0 --prompt 4096 --gen 4 --reps 1"
for round in 1 2; do
    for v in 0 1; do
        for opt in "" --bf16-activations; do
            echo "== round $round LAGUNA_CUDA_WGMMA=$v $opt: $(LAGUNA_CUDA_WGMMA=$v $B $opt 2>&1 | grep -E '^prefill' | head -1)"
        done
    done
done
