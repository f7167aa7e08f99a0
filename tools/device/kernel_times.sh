#!/usr/bin/env bash
# Dev-only, through the device tool: each kernel's own GPU time (ncu,
# kernels serialised) over the first steps of a short bench on XS.2 shapes
# of LAYERS layers, so a decode step can be read kernel by kernel.
set -uo pipefail
LAYERS=${LAYERS:-4}
tools/device/build.sh all > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
M=/tmp/xs2-$LAYERS
[ -d $M ] || build/laguna synth --preset xs2 --layers $LAYERS --out $M > /dev/null
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
LAGUNA_CUDA_GRAPHS=0 $NCU --metrics gpu__time_duration.sum --launch-count ${COUNT:-400} --csv \
    build/laguna bench -m $M --device cuda --prompt 8 --gen 6 --reps 1 > "$OUT/ncu.csv" 2> "$OUT/ncu.err"
tail -3 "$OUT/ncu.err"
wc -l "$OUT/ncu.csv"
