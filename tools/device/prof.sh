set -uo pipefail
tools/device/build.sh all > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
for L in 4 8; do build/laguna synth --preset xs2 --layers $L --out /tmp/x$L > /dev/null & done; wait
for L in 4 8; do
  echo "== layers $L"
  LAGUNA_CUDA_PROFILE=1 build/laguna bench -m /tmp/x$L --device cuda --prompt 512 --gen 64 --reps 1 2>&1 | grep -v "^sampling"
  build/laguna bench -m /tmp/x$L --device cuda --prompt 1000 --gen 64 --reps 3 2>&1 | grep -E "prefill|decode \("
done
