#!/usr/bin/env bash
# Dev-only, through the device tool: builds, runs the CUDA tests (kernels,
# fixtures, contexts, engine cases on the GPU), then times an XS.2-shaped
# model of LAYERS layers (default 4) and profiles one bench run with nsys
# when it is installed. Results land in $OUT.
set -uo pipefail
LAYERS=${LAYERS:-4}
T="build/tests/test_cuda build/tests/test_context build/tests/test_engine build/tests/test_generate"
{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv; nproc; } > "$OUT/machine.txt" 2>&1
tools/device/build.sh all $T > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
{
    build/tests/test_cuda
    LAGUNA_TEST_DEVICE=cuda build/tests/test_context
    LAGUNA_TEST_DEVICE=cuda build/tests/test_engine
    LAGUNA_TEST_DEVICE=cuda build/tests/test_generate
} > "$OUT/tests.txt" 2>&1
grep -E "passed|FAIL|SKIP" "$OUT/tests.txt" | tail -30
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
M=/tmp/xs2-$LAYERS
[ -d $M ] || build/laguna synth --preset xs2 --layers $LAYERS --out $M > /dev/null
{
    build/laguna bench -m $M --device cuda --prompt 512 --gen 64 --reps 3
    build/laguna bench -m $M --device cuda --prompt 4000 --gen 32 --reps 2
    build/laguna bench -m $M --device cuda --prompt 256 --gen 32 --reps 2 --batch 1,16,64
} > "$OUT/bench.txt" 2>&1
cat "$OUT/bench.txt"
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
if [ -n "$NSYS" ]; then
    $NSYS profile -o /tmp/prof --force-overwrite true build/laguna bench -m $M --device cuda --prompt 512 --gen 64 --reps 1 > /dev/null 2>&1
    $NSYS stats --report cuda_gpu_kern_sum,cuda_api_sum --format csv /tmp/prof.nsys-rep > "$OUT/nsys.csv" 2>&1
    head -30 "$OUT/nsys.csv"
else
    echo "no nsys"
fi
