#!/usr/bin/env bash
# Dev-only, through the device tool: the CUDA tests, then full 40-layer XS.2
# shapes (weights made on the GPU) timed with an environment switch on and
# off, e.g. `AB=LAGUNA_CUDA_MMA tools/device/ab.sh` (tensor-core products vs
# CUDA-core ones). TYPES: weight types to time (default bf16).
set -uo pipefail
AB=${AB:-LAGUNA_CUDA_MMA}
. tools/device/cuda_tests.sh
cuda_build
cuda_run_tests
[ "${TESTS_ONLY:-0}" = 1 ] && exit 0
B="build/laguna bench --device cuda --synth xs2"
for type in ${TYPES:-bf16}; do
    for v in 1 0; do
        echo "== $AB=$v type $type"
        export $AB=$v
        $B --type $type --prompt 1024 --gen 64 --reps 2 2>&1 | grep -E "prefill|decode|roofline" | grep -v sampling
        $B --type $type --prompt ${PREFILL:-4096} --gen 4 --reps 1 2>&1 | grep -E "^prefill|prefill .*tok/s" | head -2
        $B --type $type --prompt 256 --gen 32 --reps 1 --batch 1,8,32,128 2>&1 | tail -5
    done
done
