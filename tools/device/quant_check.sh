#!/usr/bin/env bash
# Dev-only, through the device tool: build, the CUDA tests, `laguna verify
# --device cuda` on every fixture, then Q4_K_M and Q8_0 decode after 1024,
# prefill of 1024 and 4096, and Q4_K_M batched decode (full XS.2 shapes,
# weights made on the GPU). Usage: bash tools/device/quant_check.sh
set -uo pipefail
. tools/device/cuda_tests.sh
cuda_build bench
cuda_run_tests
bash tools/device/verify_all.sh
B="build/laguna bench --device cuda --synth xs2 --probe-mib 0"
for ty in q4_k_m q8_0; do
  echo "== $ty"; timeout 100 $B --type $ty --prompt 1024 --gen 64 --reps 2 2>&1 | grep -E "decode greedy|^prefill|roofline"
  timeout 100 $B --type $ty --prompt 4096 --gen 2 --reps 1 2>&1 | grep -E "^prefill"
done
echo "== q4_k_m batch"; timeout 240 $B --type q4_k_m --prompt 256 --gen 32 --reps 1 --batch 1,8,32 2>&1 | tail -5
