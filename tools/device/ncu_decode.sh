#!/usr/bin/env bash
# Dev-only, through the device tool: every kernel of a short XS.2-shaped run
# (4 layers, weights made on the GPU) under Nsight Compute, one pass each:
# duration and DRAM bytes read, summed per kernel name and grid, so decode's
# kernels show beside the prefill's. Needs a built build/laguna.
# LAST=N: also the run's last N launches in order (the last decode step's ops
# one by one, where one kernel serves several ops).
# Also L2 bytes (lts__t_bytes: every request an SM or the copy engine made
# of L2), to tell products bound by what they re-read from L2 from those
# bound by HBM. K=regex: other kernels.
# Usage: LAYERS=4 PROMPT=1024 GEN=4 TYPE=bf16 [EXTRA="--batch 32"] [LAST=30] [K=regex:...] bash tools/device/ncu_decode.sh
set -uo pipefail
LAYERS=${LAYERS:-4} PROMPT=${PROMPT:-1024} GEN=${GEN:-4} TYPE=${TYPE:-bf16}
K=${K:-'regex:rmsnorm|mma_|rope|kv_write|attention|gate_kernel|add_kernel|router|group_kernel|gather|silu|combine|embed|matmul_kernel|matmul_staged|gemm_kernel|fused'}
ncu --clock-control none --csv --print-units base --kernel-name "$K" \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,lts__t_bytes.sum,launch__grid_size,launch__block_size \
    build/laguna bench --device cuda --synth xs2 --type "$TYPE" --layers "$LAYERS" --prompt "$PROMPT" --gen "$GEN" --reps 1 \
    --probe-mib 0 ${EXTRA:-} > "$OUT/ncu.csv" 2> "$OUT/ncu.err"
python3 - "$OUT/ncu.csv" "${LAST:-0}" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head, rows = rows[0], rows[1:]
col = {n: i for i, n in enumerate(head)}
k = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
launch = collections.defaultdict(dict)
for r in rows:
    key = (r[col["ID"]], r[col["Kernel Name"]].split("(")[0][:40])
    launch[key][r[col["Metric Name"]]] = r[col["Metric Value"]].replace(",", "")
for (i, name), m in launch.items():
    g = (name, m.get("launch__grid_size", "?"), m.get("launch__block_size", "?"))
    k[g][0] += 1
    k[g][1] += float(m.get("gpu__time_duration.sum", 0))
    k[g][2] += float(m.get("dram__bytes_read.sum", 0))
    k[g][3] += float(m.get("lts__t_bytes.sum", 0))
print("%-40s %8s %5s %6s %10s %8s %8s %9s" % ("kernel", "grid", "block", "count", "us each", "MB each", "GB/s",
                                             "L2 MB"))
for g, (n, t, b, l2) in sorted(k.items(), key=lambda kv: -kv[1][1]):
    print("%-40s %8s %5s %6d %10.2f %8.2f %8.0f %9.2f" % (g[0], g[1], g[2], n, t / n / 1e3, b / n / 1e6,
                                                         b / t if t else 0, l2 / n / 1e6))
last = int(sys.argv[2])
if last:
    print("the last %d launches:" % last)
    for (i, name), m in sorted(launch.items(), key=lambda kv: int(kv[0][0]))[-last:]:
        t, b = float(m.get("gpu__time_duration.sum", 0)), float(m.get("dram__bytes_read.sum", 0))
        print("%-40s %8s %10.2f %8.2f %8.0f" % (name, m.get("launch__grid_size", "?"), t / 1e3, b / 1e6, b / t if t else 0))
PY
tail -3 "$OUT/ncu.err"
