#!/usr/bin/env bash
# Dev-only, through the device tool: this tree against an older commit on
# the same machine, interleaved. Make the base's sources beforehand (they
# travel as an untracked file): `git archive BASE --prefix=old/ -- .
# ':!models' ':!tests/fixtures' ':!docs' | gzip > old_src.tar.gz`. Builds both
# (the CUDA tests of this tree too and runs them unless TESTS=0), then for
# each of TYPES: decode after PROMPT tokens and a PREFILL-token prefill,
# ROUNDS rounds of (base, this), each line printed.
set -uo pipefail
TYPES=${TYPES:-"q4_k_m"} PROMPT=${PROMPT:-1024} PREFILL=${PREFILL:-1024} ROUNDS=${ROUNDS:-2}
. tools/device/cuda_tests.sh
cuda_build bench
rm -rf /tmp/base && mkdir -p /tmp/base && tar -xzf old_src.tar.gz -C /tmp/base && cp -r .debs /tmp/base/old/ &&
    (cd /tmp/base/old && tools/device/build.sh build/laguna) > "$OUT/build_base.log" 2>&1 ||
    { tail -40 "$OUT/build_base.log"; exit 1; }
[ "${TESTS:-1}" = 1 ] && cuda_run_tests
A="--device cuda --synth xs2 --probe-mib 0"
for type in $TYPES; do
    for round in $(seq "$ROUNDS"); do
        for side in base this; do
            bin=build/laguna
            [ $side = base ] && bin=/tmp/base/old/build/laguna
            d=$(timeout 120 $bin bench $A --type $type --prompt $PROMPT --gen 64 --reps 2 2>&1 | grep -E "decode greedy" | head -1)
            p=$(timeout 120 $bin bench $A --type $type --prompt $PREFILL --gen 2 --reps 1 2>&1 | grep -E "^prefill" | head -1)
            echo "$type round $round $side: $d | $p"
        done
    done
done
exit 0
