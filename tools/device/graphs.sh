#!/usr/bin/env bash
# Dev-only, through the device tool: the CUDA tests with decode steps
# recorded as graphs (the default) and without, then XS.2 shapes of LAYERS
# layers timed both ways, after 512 and 4000 positions. Per-op GPU times:
# LAGUNA_CUDA_PROFILE=1 on a bench; per kernel: tools/device/kernel_times.sh.
set -uo pipefail
LAYERS=${LAYERS:-8}
T="build/tests/test_cuda build/tests/test_context build/tests/test_engine build/tests/test_generate"
tools/device/build.sh all $T > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
M=/tmp/xs2-$LAYERS
[ -d $M ] || build/laguna synth --preset xs2 --layers $LAYERS --out $M > /dev/null &
{
    LAGUNA_CUDA_GRAPH_STATS=1 build/tests/test_cuda
    LAGUNA_CUDA_GRAPH_STATS=1 LAGUNA_TEST_DEVICE=cuda build/tests/test_context
    LAGUNA_TEST_DEVICE=cuda build/tests/test_engine
    LAGUNA_TEST_DEVICE=cuda build/tests/test_generate
} > "$OUT/tests.txt" 2>&1
grep -E "passed|FAIL" "$OUT/tests.txt" | tail -12
grep "cuda graphs" "$OUT/tests.txt" | sort | uniq -c | sort -rn | head -5
wait
for g in 1 0; do
    echo "== LAGUNA_CUDA_GRAPHS=$g"
    LAGUNA_CUDA_GRAPH_STATS=1 LAGUNA_CUDA_GRAPHS=$g build/laguna bench -m $M --device cuda --prompt 512 --gen 128 --reps 3 2>&1 | grep -E "prefill|decode|graphs" | sort | uniq
    LAGUNA_CUDA_GRAPHS=$g build/laguna bench -m $M --device cuda --prompt 4000 --gen 32 --reps 2 2>&1 | grep -E "decode greedy|decode \("
    LAGUNA_CUDA_GRAPHS=$g build/laguna bench -m $M --device cuda --prompt 256 --gen 32 --reps 2 --batch 1,16,64 2>&1 | tail -4
done
