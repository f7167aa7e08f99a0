#!/usr/bin/env bash
# Dev-only, through the device tool: issue 15's thread-scaling table on the
# GPU machine's CPU. laguna.c beside llama.cpp on the same file (XS.2 shapes,
# LAYERS layers, TYPE as `laguna synth --type` takes it: q4_k_m by default,
# q8_0, bf16; made there), one bench/llama_cpp_compare.sh call per thread
# count. The machine has no network, so llama.cpp's source comes as a
# tarball carried with the tree (LLAMA_SRC, an ignored path: carry it), e.g.
# node-llama-cpp's bundled source without .git, models, docs and the GPU
# backends; it is built in /tmp, never in the repository. Made from an
# unpacked source (bench/llama_cpp_compare.sh --build-only leaves it in
# /tmp/llb/src) with anchored excludes, as src/src/models is needed:
#   cd /tmp/llb && tar cf - --anchored --exclude=src/.git --exclude=src/docs \
#     --exclude=src/models --exclude=src/media --exclude=src/tests \
#     --exclude=src/ggml/src/ggml-cuda ... src | xz > .llama-src.tar.xz  (~6 MB)
# With it, models/laguna-tiny-chat and tests/data may need moving aside for
# the device tool's 64 MiB (this script uses neither).
set -uo pipefail
LLAMA_SRC=${LLAMA_SRC:-.llama-src.tar.xz} LAYERS=${LAYERS:-4} THREADS=${THREADS:-"1 2 4 8 16"} TYPE=${TYPE:-q4_k_m}
PROMPT=${PROMPT:-256} GEN=${GEN:-64} ROUNDS=${ROUNDS:-1} REPS=${REPS:-2}
# CPU only, in a folder of its own (build/ may hold a carried CUDA build), for this CPU
tools/device/build.sh NO_CUDA=1 BUILD=build-cpu build-cpu/laguna > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
bench/llama_cpp_compare.sh --build-only --scratch /tmp/llb --llama-src "$LLAMA_SRC" > "$OUT/llama-build.log" 2>&1 ||
    { tail -n 20 "$OUT/llama-build.log" /tmp/llb/build.log; exit 1; }
M=/tmp/x${LAYERS}$TYPE.gguf
[ -f $M ] || build-cpu/laguna synth --preset xs2 --layers $LAYERS --type $TYPE --tokenizer models/laguna-tiny --out $M \
    > "$OUT/synth.log" 2>&1 || { tail -5 "$OUT/synth.log"; exit 1; }
lscpu | grep -E "^Model name|^CPU\(s\)|^Thread|^Core|^Socket"
# the flags that decide the quantised products' paths (llama.cpp's CPU backend uses AMX where it exists)
echo "Flags: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512_bf16|amx_tile|amx_int8|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
for t in $THREADS; do
    echo "== $t threads"
    bench/llama_cpp_compare.sh $M --scratch /tmp/llb --laguna "$PWD/build-cpu/laguna" --threads $t --prompt $PROMPT --gen $GEN --rounds $ROUNDS --reps $REPS \
        2>"$OUT/compare$t.err" | tail -5
done
exit 0
