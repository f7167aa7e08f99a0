#!/usr/bin/env bash
# Dev-only, through the device tool: the issue-10 table on the H200. PARTS
# picks what runs (default all, in this order):
#   tests        CUDA tests (fixtures, per-op, engine/generate/context on cuda)
#   bench        full 40-layer XS.2 shapes, weights made on the GPU: bf16 (bf16
#                and f32 KV) and Q4_K_M decode after 1024, prefill of 4096 and
#                32768 (decode after it), batched decode at ctx 1024; bf16 again
#                with --bf16-activations
#   profile      per-op GPU times of decode steps (LAGUNA_CUDA_PROFILE=1)
#   serve        the server's load test on the GPU (laguna-tiny)
#   transformers bench/transformers_compare.py: both engines in one table
set -uo pipefail
PARTS=${PARTS:-"tests bench profile serve transformers"}
has() { [[ " $PARTS " == *" $1 "* ]]; }
. tools/device/cuda_tests.sh
cuda_build bench
has tests && cuda_run_tests
B="build/laguna bench --device cuda --synth xs2"
if has bench; then
    {
        $B --prompt 1024 --gen 64 --reps 3
        $B --prompt 1024 --gen 64 --reps 2 --kv-type f32 --probe-mib 0
        $B --type q4_k_m --prompt 1024 --gen 64 --reps 3 --probe-mib 0
        $B --prompt 4096 --gen 4 --reps 2 --probe-mib 0
        $B --prompt 32768 --gen 32 --reps 1 --probe-mib 0
        $B --prompt 1024 --gen 16 --reps 1 --batch 1,8,32,128 --probe-mib 0
        # the bf16_activations option (products and attention on bf16 activations)
        $B --prompt 1024 --gen 64 --reps 2 --probe-mib 0 --bf16-activations
        $B --prompt 4096 --gen 4 --reps 2 --probe-mib 0 --bf16-activations
        $B --prompt 32768 --gen 32 --reps 1 --probe-mib 0 --bf16-activations
    } > "$OUT/bench.txt" 2>&1
    grep -E "^model|^prefill|decode greedy|device copy|vs roofline|^[0-9]+ +[0-9.]+ " "$OUT/bench.txt"
fi
if has profile; then
    LAGUNA_CUDA_PROFILE=1 $B --prompt 8 --gen 256 --reps 1 --probe-mib 0 2>&1 | grep -vE "^sampling|^weight" | head -24
fi
if has serve; then
    timeout 120 build/bench/serve_load -m models/laguna-tiny --device cuda --requests 48 --max-tokens 64 2>&1 | tail -12
fi
if has transformers; then
    # TF_PREFILL=1024 on an 80 GB GPU: transformers' 4096-token prefill does not fit beside the 67 GB of weights;
    # TF_LAGUNA=--bf16-activations: laguna.c at transformers' activation precision
    timeout ${TF_TIMEOUT:-300} python3 bench/transformers_compare.py --preset xs2 --prompt 1024 --gen 8 --prefill ${TF_PREFILL:-4096} ${TF_LAGUNA:-} \
        --reps ${REPS:-1} > "$OUT/compare.txt" 2>&1
    tail -15 "$OUT/compare.txt"
fi
