# Dev-only, sourced by tools/device/trace_decode.sh and trace_prefill.sh:
# traced_bench TRACE LOG ARGS... runs `${BIN:-build/laguna} bench --device
# cuda --synth xs2 ARGS` under the CUPTI tracer (tools/device/kernel_trace.c,
# built once into /tmp), its output into LOG, every kernel as
# "start_ns,end_ns,name" (names demangled) into TRACE. Fails, showing the
# log's tail, when the run fails.
traced_bench() {
    local trace=$1 log=$2 cu=/usr/local/cuda/targets/x86_64-linux
    shift 2
    [ -f /tmp/kernel_trace.so ] || gcc -std=c11 -O2 -shared -fPIC -I$cu/include tools/device/kernel_trace.c \
        -L$cu/lib -lcupti -Wl,-rpath,$cu/lib -o /tmp/kernel_trace.so || return 1
    CUDA_INJECTION64_PATH=/tmp/kernel_trace.so KERNEL_TRACE_OUT=$trace \
        ${BIN:-build/laguna} bench --device cuda --synth xs2 "$@" > "$log" 2>&1 || { tail -20 "$log"; return 1; }
    c++filt < "$trace" > "$trace.d" && mv "$trace.d" "$trace"
}
