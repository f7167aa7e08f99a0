#!/usr/bin/env bash
# Dev-only, through the device tool: the server on the GPU with XS.2-sized
# layers (8 layers in Q4_K_M made there, the 100352-id head), measured as
# stop 43's note asks: greedy rows with queued steps on and off
# (LAGUNA_QUEUED_STEPS), then sampled rows drawn on 1 and on 8 host threads
# (--sample-threads), each pair alternated over 2 rounds.
set -uo pipefail
. tools/device/cuda_tests.sh
cuda_build bench
build/laguna synth --preset xs2 --layers 8 --type q4_k_m --tokenizer models/laguna-tiny-chat --out /tmp/x8.gguf > /dev/null || exit 1
L="build/bench/serve_load -m /tmp/x8.gguf --device cuda --requests 32 --max-tokens 64 --concurrency 1,4,16 --conversations 1"
for round in 1 2; do
    for q in 1 0; do
        echo "== round $round greedy, LAGUNA_QUEUED_STEPS=$q"
        LAGUNA_QUEUED_STEPS=$q $L --temperature 0 2>&1 | grep concurrency
    done
    for t in 8 1; do
        echo "== round $round sampled (temperature 1), --sample-threads $t"
        $L --temperature 1 --sample-threads $t 2>&1 | grep concurrency
    done
done
