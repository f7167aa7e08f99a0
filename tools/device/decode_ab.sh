#!/usr/bin/env bash
# Dev-only, through the device tool: decode-step experiments on full XS.2
# shapes (weights made on the GPU). Builds, runs the CUDA tests (unless
# TESTS=0), then for each VARIANTS entry (space-separated; each a
# comma-separated list of NAME=VALUE environment switches, "-" for none;
# BIN=path runs that binary, e.g. BIN=build/laguna-base from prebuild.sh's BASE)
# decode after PROMPT tokens, medians of REPS (EXTRA: more bench arguments,
# e.g. "--batch 32"; ROUNDS: the variants that many times, interleaved); then decode at LAYERS_SCAN
# depths with the defaults; LONG=1: decode after 32768; Q4=1: Q4_K_M
# decode; then NCU=1: every kernel of a 4-layer run under
# Nsight Compute (tools/device/ncu_decode.sh). Everything printed is also
# written, line by line, to $OUT/ab.txt, which comes back even when the call
# runs past its limit (a pipe after this script loses what it held).
set -uo pipefail
exec > >(tee -a "${OUT:-/tmp}/ab.txt") 2>&1
keep() { grep --line-buffered -E "$1"; } # the lines wanted, each passed on as it comes
VARIANTS=${VARIANTS:-"-"} PROMPT=${PROMPT:-1024} REPS=${REPS:-3} TYPE=${TYPE:-bf16} EXTRA=${EXTRA:-} ROUNDS=${ROUNDS:-1}
. tools/device/cuda_tests.sh
cuda_build bench
[ "${TESTS:-1}" = 1 ] && cuda_run_tests
B="build/laguna bench --device cuda --synth xs2 --probe-mib 0"
for round in $(seq "$ROUNDS"); do
    for v in $VARIANTS; do
        (
            [ "$v" = - ] || for kv in ${v//,/ }; do export "$kv"; done
            echo "== $v"
            B=${B/build\/laguna/${BIN:-build/laguna}}
            timeout 120 $B --type $TYPE --prompt $PROMPT --gen ${GEN:-64} --reps $REPS $EXTRA 2>&1 |
                keep "decode greedy|^prefill|^ *[0-9]+ +[0-9.]+ "
        )
    done
done
for l in ${LAYERS_SCAN:-}; do
    echo "== layers $l"
    timeout 90 $B --type $TYPE --layers $l --prompt $PROMPT --gen 64 --reps $REPS 2>&1 | keep "decode greedy"
done
if [ "${LONG:-0}" = 1 ]; then
    echo "== decode after 32768"
    timeout 150 $B --prompt 32768 --gen 32 --reps 1 2>&1 | keep "decode greedy|^prefill"
fi
if [ "${Q4:-0}" = 1 ]; then
    echo "== q4_k_m"
    timeout 120 $B --type q4_k_m --prompt 1024 --gen 64 --reps 2 2>&1 | keep "decode greedy|^prefill"
fi
[ "${NCU:-0}" = 1 ] && LAYERS=4 PROMPT=64 GEN=4 bash tools/device/ncu_decode.sh > "$OUT/ncu.txt" 2>&1 && head -60 "$OUT/ncu.txt"
exit 0
