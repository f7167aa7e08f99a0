#!/usr/bin/env bash
# laguna.c beside llama.cpp on the same GGUF: prefill and decode tok/s of
# both engines, measured in interleaved rounds (ours, theirs, ours, theirs...)
# so that a noisy neighbour hurts both alike; prints every sample, the medians
# and the ratio, and both engines' decode against the memory-bandwidth
# roofline that `laguna bench` measures.
#
# llama.cpp is built from the source bundled in the npm package node-llama-cpp
# (the version that reads Laguna GGUFs), in a scratch folder outside this
# repository, CPU backend only, once: later runs reuse the build. Nothing of it
# is ever committed.
#
# usage: bench/llama_cpp_compare.sh MODEL.gguf [options]
#   --threads N     threads for both engines (default 2)
#   --prompt N      prompt tokens (default 512)
#   --gen N         tokens decoded after the prompt (default 64)
#   --rounds R      interleaved rounds (default 3)
#   --reps K        repeats per round and engine (default 3)
#   --scratch DIR   where llama.cpp is fetched and built (default /tmp/llamacpp)
#   --laguna PATH   the laguna program (default build/laguna)
#   --load MODE     laguna's --load (default auto); llama.cpp keeps its default (mmap)
#   --kv-type T     KV cache type of both engines: f16 (default, llama.cpp's default) or q8_0
#   --busy-core C   contention: while each engine runs, a CPU-bound loop pinned to core C
#                   (taskset) competes with it, as another program on a desktop would
#   --bf16-activations  laguna.c rounds activations to bf16 for bf16 weights, as llama.cpp
#                   always does (laguna bench --bf16-activations): the same precision in both
#   --build-only    fetch and build llama.cpp, then stop
#   --llama-src S   build from this llama.cpp source (a folder, or a .tar.xz/.tar.gz of one)
#                   instead of fetching the npm package (for machines with no network)
# The GGUF needs a tokenizer for llama.cpp: for a synthetic model use
#   laguna synth --preset xs2 --layers 8 --type q4_k_m --tokenizer models/laguna-tiny --out x.gguf
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
repo=$(cd "$(dirname "$0")/.." && pwd)
threads=2 prompt=512 gen=64 rounds=3 reps=3 scratch=/tmp/llamacpp laguna=$repo/build/laguna load=auto kv=f16
model="" build_only=0 busy="" llama_src="" ours_extra=()

die() { echo "llama_cpp_compare: $*" >&2; exit 1; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 wants a positive whole number (got '$2')"; }

while [ $# -gt 0 ]; do
    case $1 in
        --threads|--prompt|--gen|--rounds|--reps)
            [ $# -ge 2 ] || die "$1 needs a value"; need_int "$1" "$2"
            declare "${1#--}=$2"; shift 2 ;;
        --scratch) [ $# -ge 2 ] || die "$1 needs a value"; scratch=$2; shift 2 ;;
        --laguna) [ $# -ge 2 ] || die "$1 needs a value"; laguna=$2; shift 2 ;;
        --load) [ $# -ge 2 ] || die "$1 needs a value"; load=$2; shift 2 ;;
        --kv-type) [ $# -ge 2 ] || die "$1 needs a value"; kv=$2; shift 2
            [ "$kv" = f16 ] || [ "$kv" = q8_0 ] || die "--kv-type must be f16 or q8_0 (got '$kv')" ;;
        --busy-core) [ $# -ge 2 ] || die "$1 needs a value"; busy=$2; shift 2
            [[ $busy =~ ^[0-9]+$ ]] || die "--busy-core wants a core number (got '$busy')" ;;
        --build-only) build_only=1; shift ;;
        --bf16-activations) ours_extra+=(--bf16-activations); shift ;;
        --llama-src) [ $# -ge 2 ] || die "$1 needs a value"; llama_src=$(realpath "$2") || die "$2: no such source"; shift 2
            [ -e "$llama_src" ] || die "$llama_src: no such source" ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [ -z "$model" ] || die "one model only (got '$model' and '$1')"; model=$1; shift ;;
    esac
done
[ $build_only = 1 ] || [ -n "$model" ] || die "missing MODEL.gguf (see --help)"
[ $build_only = 1 ] || [ -f "$model" ] || die "$model: no such file"
[ $build_only = 1 ] || [ -x "$laguna" ] || die "$laguna: not built (run make)"

# ---- llama.cpp, built once in the scratch folder ------------------------------------
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
case "$scratch/" in "$repo"/*) die "--scratch $scratch is inside the repository; choose a folder outside it" ;; esac
llama_bench=$scratch/build/bin/llama-bench

build_llama_cpp() {
    if ! command -v cmake >/dev/null; then
        echo "llama_cpp_compare: installing cmake (apt)" >&2
        local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get install -y cmake >&2 || die "cannot install cmake"
    fi
    cd "$scratch"
    if [ -n "$llama_src" ] && [ -d "$llama_src" ]; then
        [ -d src ] || cp -r "$llama_src" src || die "cannot copy $llama_src"
    elif [ -n "$llama_src" ]; then
        # a tarball whose top folder is the source
        [ -d src ] || { mkdir src && tar xf "$llama_src" -C src --strip-components=1; } || die "cannot unpack $llama_src"
    else
        command -v npm >/dev/null || die "npm is needed to fetch node-llama-cpp@$NODE_LLAMA_CPP_VERSION"
        command -v git >/dev/null || die "git is needed to unpack llama.cpp's source"
        local tgz=node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz
        [ -f "$tgz" ] || npm pack "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >&2 || die "npm pack failed"
        [ -d package ] || tar xzf "$tgz"
        # the package carries llama.cpp's source as a git bundle
        [ -d src ] || git clone -q package/llama/gitRelease.bundle src || die "cannot unpack package/llama/gitRelease.bundle"
    fi
    echo "llama_cpp_compare: building llama-bench in $scratch/build (CPU backend; this takes a while)" >&2
    cmake -S src -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DBUILD_SHARED_LIBS=OFF \
        >build.log 2>&1 || { tail -20 build.log >&2; die "cmake configure failed (log: $scratch/build.log)"; }
    cmake --build build --target llama-bench -j "$(nproc)" >>build.log 2>&1 ||
        { tail -20 build.log >&2; die "build failed (log: $scratch/build.log)"; }
    cd - >/dev/null
}
[ -x "$llama_bench" ] || build_llama_cpp
[ -x "$llama_bench" ] || die "no $llama_bench after the build"
[ $build_only = 0 ] || { echo "$llama_bench"; exit 0; }

# ---- rounds --------------------------------------------------------------------------
logs=$(mktemp -d)
spinner=""
# --busy-core: one spinning shell pinned to the core, started and ended around each engine's run
busy_start() {
    [ -n "$busy" ] || return 0
    taskset -c "$busy" sh -c 'while :; do :; done' &
    spinner=$!
}
busy_stop() {
    [ -n "$spinner" ] || return 0
    kill "$spinner" 2>/dev/null || true
    wait "$spinner" 2>/dev/null || true
    spinner=""
}
trap 'busy_stop; rm -rf "$logs"' EXIT
[ -z "$busy" ] || command -v taskset >/dev/null || die "--busy-core needs taskset (util-linux)"

# Every sample of a `laguna bench` line ("prefill (512 tokens)  78.1 tok/s [77.2 78.1 80.3]").
laguna_samples() { sed -n "s/^$1.*tok\/s \[\([0-9. ]*\)\].*/\1/p" "$2"; }
# samples_ts of llama-bench's jsonl line for a test.
llama_samples() {
    grep "\"n_prompt\": $1, \"n_gen\": $2," "$3" | sed -n 's/.*"samples_ts": \[ *\([^]]*\)\].*/\1/p' | tr -d ','
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
fmt() { tr ' ' '\n' | grep . | awk '{printf "%s%.1f", (NR>1?" ":""), $1}'; }

ours_pre="" ours_dec="" theirs_pre="" theirs_dec=""
for r in $(seq 1 "$rounds"); do
    echo "round $r/$rounds: laguna.c" >&2
    busy_start
    "$laguna" bench -m "$model" --threads "$threads" --prompt "$prompt" --gen "$gen" --reps "$reps" --load "$load" \
        --kv-type "$kv" "${ours_extra[@]}" \
        >"$logs/ours$r.txt" 2>"$logs/ours$r.err" || { cat "$logs/ours$r.err" >&2; die "laguna bench failed"; }
    busy_stop
    ours_pre+=" $(laguna_samples prefill "$logs/ours$r.txt")"
    ours_dec+=" $(laguna_samples 'decode greedy' "$logs/ours$r.txt")"
    echo "round $r/$rounds: llama.cpp" >&2
    busy_start
    # prefill from an empty cache; decode after a cache of --prompt tokens, as laguna bench does
    "$llama_bench" -m "$model" -t "$threads" -p "$prompt" -n 0 -r "$reps" -ctk "$kv" -ctv "$kv" -o jsonl >"$logs/theirs$r.jsonl" 2>"$logs/theirs$r.err" &&
        "$llama_bench" -m "$model" -t "$threads" -p 0 -n "$gen" -d "$prompt" -r "$reps" -ctk "$kv" -ctv "$kv" -o jsonl >>"$logs/theirs$r.jsonl" \
            2>>"$logs/theirs$r.err" || { tail -20 "$logs/theirs$r.err" >&2; die "llama-bench failed"; }
    busy_stop
    theirs_pre+=" $(llama_samples "$prompt" 0 "$logs/theirs$r.jsonl")"
    theirs_dec+=" $(llama_samples 0 "$gen" "$logs/theirs$r.jsonl")"
done

last=$logs/ours$rounds.txt
bw=$(sed -n 's/^memory read bandwidth *\([0-9.]*\) GB\/s.*/\1/p' "$last")
gb_per_token=$(sed -n 's/^weights read per decoded token *\([0-9.]*\) GB.*/\1/p' "$last")
op=$(echo "$ours_pre" | median) od=$(echo "$ours_dec" | median)
tp=$(echo "$theirs_pre" | median) td=$(echo "$theirs_dec" | median)
roof() { awk -v d="$1" -v b="$bw" -v g="$gb_per_token" 'BEGIN { if (b > 0 && g > 0) printf "%.2f", d * g / b; else print "-" }'; }

echo "file $model ($(du -h "$model" | cut -f1)), $threads threads, prompt $prompt, decode $gen after $prompt"
echo "$rounds interleaved rounds x $reps repeats per engine; medians over all $((rounds * reps)) samples"
[ -z "$busy" ] || echo "contention: a CPU-bound loop pinned to core $busy during every run"
head -1 "$last" | sed 's/^/laguna.c: /'
echo "llama.cpp: node-llama-cpp $NODE_LLAMA_CPP_VERSION's bundled source, CPU build (OpenMP, native), mmap"
echo "bandwidth probe (laguna bench, last round): $bw GB/s; weights read per decoded token: $gb_per_token GB"
echo
printf "%-10s %14s %13s %16s   %s\n" engine "prefill tok/s" "decode tok/s" "decode/roofline" "samples (prefill | decode)"
printf "%-10s %14.1f %13.2f %16s   %s | %s\n" laguna.c "$op" "$od" "$(roof "$od")" "$(echo "$ours_pre" | fmt)" "$(echo "$ours_dec" | fmt)"
printf "%-10s %14.1f %13.2f %16s   %s | %s\n" llama.cpp "$tp" "$td" "$(roof "$td")" "$(echo "$theirs_pre" | fmt)" "$(echo "$theirs_dec" | fmt)"
awk -v a="$op" -v b="$tp" -v c="$od" -v d="$td" 'BEGIN { printf "%-10s %14.2f %13.2f   (laguna.c / llama.cpp)\n", "ratio", a / b, c / d }'
