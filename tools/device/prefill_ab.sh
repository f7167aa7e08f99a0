#!/usr/bin/env bash
# Dev-only, through the device tool: a change to the prompt path checked and
# timed in one call. Needs build/laguna-base beside the tree's build (e.g.
# BASE=<commit> tools/device/prebuild.sh, then carry .devbins.tar.xz). Runs
# the product and MoE tests, then prefill of PROMPT tokens (4096), ROUNDS
# rounds (2) of: the base, this tree, and this tree with each environment
# switch of SWITCHES set to 0 and each of ON set to 1 (switches off by
# default: their tests run with them too), with --bf16-activations and
# without; then `laguna verify --device cuda` on every fixture, the whole
# CUDA suite and a prompt's kernels traced (TRACE=0: not).
# Usage: SWITCHES="LAGUNA_CUDA_WGMMA_OVERLAP LAGUNA_CUDA_MOE_BUSIEST_FIRST" ON=LAGUNA_CUDA_MOE_ROWS_PACKED \
#        bash tools/device/prefill_ab.sh
set -uo pipefail
PROMPT=${PROMPT:-4096} ROUNDS=${ROUNDS:-2} SWITCHES=${SWITCHES:-} ON=${ON:-}
. tools/device/cuda_tests.sh
cuda_build
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
echo "== the product and MoE tests"
T=test_wgmma_ring,test_matmul_batch_invariant,test_moe_batch_invariant,test_moe_experts,test_moe_rows_through_plan
LAGUNA_TEST_ONLY=$T,test_matmul_bf16_activations,test_moe_group LAGUNA_TEST_DEVICE=cuda timeout 240 \
    build/tests/test_cuda_ops 2>&1 | grep -E "^(PASS|FAIL)|differ" | tail -14
for s in $ON; do
    echo "== the product and MoE tests with $s=1"
    env "$s=1" LAGUNA_TEST_ONLY=$T LAGUNA_TEST_DEVICE=cuda timeout 240 build/tests/test_cuda_ops 2>&1 |
        grep -E "^(PASS|FAIL)|differ" | tail -14
done
B="bench --device cuda --synth xs2 --probe-mib 0 --prompt $PROMPT --gen 4 --reps 2"
timed() { # label, then the command
    local label=$1
    shift
    printf '%-34s %s\n' "$label" "$(timeout 120 "$@" 2>&1 | grep -E '^prefill')"
}
for act in --bf16-activations ""; do
    echo "== prefill of $PROMPT ${act:-(default activations)}"
    for r in $(seq "$ROUNDS"); do
        timed base build/laguna-base $B $act
        timed new build/laguna $B $act
        for s in $SWITCHES; do timed "$s=0" env "$s=0" build/laguna $B $act; done
        for s in $ON; do timed "$s=1" env "$s=1" build/laguna $B $act; done
    done
done
echo "== verify"
timeout 150 bash tools/device/verify_all.sh
echo "== the whole CUDA suite"
TEST_TIMEOUT=120 cuda_run_tests
[ "${TRACE:-1}" = 0 ] || { echo "== a prompt's kernels (bf16 activations)"; EXTRA=--bf16-activations timeout 150 bash tools/device/trace_prefill.sh 2>&1 | tail -40; }
