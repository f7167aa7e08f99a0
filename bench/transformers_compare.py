#!/usr/bin/env python3
"""laguna.c against Hugging Face transformers on the same GPU, same shapes.

Runs on the GPU machine only (PyTorch + transformers with LagunaForCausalLM;
no network needed). Both engines run a random model of a synth preset's
shapes that is never written to disk:

  1. `laguna synth --preset P --layers N --config-only --out TMP` writes the
     preset's config.json: the one source of truth for the shapes;
  2. `laguna bench --device cuda --synth P --layers N ...` (weights made on
     the GPU) for prefill of --prefill tokens and greedy decode of --gen
     tokens after a --prompt-token prompt; it also times a device copy and
     prints decode as a fraction of that HBM roofline;
  3. transformers: LagunaForCausalLM built from that config.json in bf16 on
     the GPU with random weights (normal, std 0.02; norms 1), timed the
     same way with CUDA events (greedy decode through the KV cache), once per
     attention x experts implementation asked for ("eager", "grouped_mm";
     an implementation this transformers lacks is reported, not fatal).

Prints one table: engine, prefill tok/s, decode tok/s, and laguna.c's ratio
to each engine. Medians of --reps runs after one untimed run.

  python3 bench/transformers_compare.py --preset xs2 --prompt 1024 --gen 64 --prefill 4096
  python3 bench/transformers_compare.py --dry-run      # prints the plan, runs nothing
"""
import argparse
import gc
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="xs2", help="synth preset (xs2, xs2.1, s2.1, m1, synth-tiny)")
    p.add_argument("--layers", type=int, default=0, help="first N layers only (default: all)")
    p.add_argument("--prompt", type=int, default=1024, help="context before the timed decode (default 1024)")
    p.add_argument("--gen", type=int, default=64, help="greedy tokens decoded (default 64)")
    p.add_argument("--prefill", type=int, default=4096, help="tokens of the timed prefill (default 4096)")
    p.add_argument("--reps", type=int, default=3, help="timed runs, median (default 3)")
    p.add_argument("--type", default=None, help="laguna.c weight type (--type of bench --synth); transformers is bf16")
    p.add_argument("--laguna", default="build/laguna", help="the laguna program (default build/laguna)")
    p.add_argument("--bf16-activations", action="store_true",
                   help="laguna.c with --bf16-activations (bf16 activations, as transformers' bf16 model)")
    p.add_argument("--device", default="cuda", help="laguna.c's --device (default cuda; cpu to try the script)")
    p.add_argument("--attn", default="eager", help="transformers attention implementations, comma-separated")
    p.add_argument("--experts", default="eager,grouped_mm", help="transformers experts implementations, comma-separated")
    p.add_argument("--skip-laguna", action="store_true")
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    a = p.parse_args()
    for name in ("prompt", "gen", "prefill", "reps"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    return a


def laguna_commands(a):
    """The bench runs: prefill at --prefill tokens, decode of --gen after --prompt."""
    base = [a.laguna, "bench", "--device", a.device, "--synth", a.preset, "--reps", str(a.reps)]
    if a.layers:
        base += ["--layers", str(a.layers)]
    if a.type:
        base += ["--type", a.type]
    if a.bf16_activations:
        base += ["--bf16-activations"]
    prefill = base + ["--prompt", str(a.prefill), "--gen", "1"]
    decode = base + ["--prompt", str(a.prompt), "--gen", str(a.gen)]
    return prefill, decode


def config_command(a, out_dir):
    cmd = [a.laguna, "synth", "--preset", a.preset, "--config-only", "--out", out_dir]
    if a.layers:
        cmd[4:4] = ["--layers", str(a.layers)]
    return cmd


def run_laguna(cmd):
    print("$ " + shlex.join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"laguna bench failed (exit {r.returncode})")
    out = {}
    patterns = {
        "prefill": r"^prefill \(\d+ tokens\)\s+([\d.]+) tok/s",
        "decode": r"^decode greedy \(\d+ after \d+\)\s+([\d.]+) tok/s",
        "copy_gbps": r"^device copy bandwidth\s+([\d.]+) GB/s",
        "roofline": r"^decode vs roofline\s+[\d.]+ tok/s ([\d.]+) of the HBM roofline",
        "floor": r"^decode roofline \(bytes / copy bw\)\s+([\d.]+) tok/s",
    }
    for key, pat in patterns.items():
        m = re.search(pat, r.stdout, re.M)
        if m:
            out[key] = float(m.group(1))
    return out


# ---- transformers ------------------------------------------------------------


def build_model(torch, cfg_dir, attn, experts, seed):
    """LagunaForCausalLM of config.json in bf16 on the GPU, random weights.
    Returns (model, what was asked and what the model reports using)."""
    from transformers import AutoConfig

    try:
        from transformers import LagunaForCausalLM
    except ImportError as e:
        raise RuntimeError(f"this transformers has no LagunaForCausalLM ({e})")
    cfg = AutoConfig.from_pretrained(cfg_dir)

    def make(kwargs):
        for dtype_kw in ("dtype", "torch_dtype"):  # transformers 5 says dtype, 4 torch_dtype
            try:
                return LagunaForCausalLM._from_config(cfg, **{dtype_kw: torch.bfloat16}, **kwargs)
            except TypeError as e:
                if f"'{dtype_kw}'" not in str(e):
                    raise
        raise RuntimeError("_from_config takes neither dtype nor torch_dtype")

    kwargs = {"attn_implementation": attn}
    with torch.device("cuda"):
        if experts == "default":
            model = make(kwargs)
        else:
            try:
                model = make({**kwargs, "experts_implementation": experts})
            except TypeError:  # no such keyword here: the model's setter, or the config attribute
                model = make(kwargs)
                if hasattr(model, "set_experts_implementation"):
                    model.set_experts_implementation(experts)
                else:
                    model.config._experts_implementation = experts
    used = getattr(model.config, "_experts_implementation", None)
    if experts != "default" and used is not None and used != experts:
        raise RuntimeError(f"asked experts_implementation='{experts}', the model uses '{used}'")
    model.eval()
    first = next(model.parameters())
    if first.dtype != torch.bfloat16 or first.device.type != "cuda":
        raise RuntimeError(f"the model was built as {first.dtype} on {first.device}, not bf16 on cuda")
    gen = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0 if "norm" in name else 0.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    note = f"attn {getattr(model.config, '_attn_implementation', attn)}, experts {used or experts}"
    return model, note


def forward(model, ids, past=None):
    try:
        return model(input_ids=ids, past_key_values=past, use_cache=True, logits_to_keep=1)
    except TypeError:  # an older forward without logits_to_keep
        return model(input_ids=ids, past_key_values=past, use_cache=True)


def time_transformers(torch, model, a, vocab):
    """Median prefill and decode tok/s over reps, after one untimed run."""
    g = torch.Generator(device="cuda").manual_seed(7)
    pre_ids = torch.randint(0, vocab, (1, a.prefill), device="cuda", generator=g)
    ctx_ids = torch.randint(0, vocab, (1, a.prompt), device="cuda", generator=g)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    pre, dec = [], []
    with torch.inference_mode():
        for r in range(-1, a.reps):
            torch.cuda.synchronize()
            start.record()
            out = forward(model, pre_ids)
            stop.record()
            torch.cuda.synchronize()
            if r >= 0:
                pre.append(a.prefill / (start.elapsed_time(stop) / 1e3))
            del out
            out = forward(model, ctx_ids)
            past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(a.gen):
                out = forward(model, tok, past)
                past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            stop.record()
            torch.cuda.synchronize()
            if r >= 0:
                dec.append(a.gen / (start.elapsed_time(stop) / 1e3))
            del out, past
    return statistics.median(pre), statistics.median(dec)


def run_transformers(a, cfg_dir, rows):
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("transformers side: torch sees no CUDA device")
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name(0)}")
    vocab = json.load(open(os.path.join(cfg_dir, "config.json")))["vocab_size"]
    for attn in a.attn.split(","):
        for experts in a.experts.split(","):
            label = f"transformers {attn} attn, {experts} experts"
            model = None
            try:
                model, note = build_model(torch, cfg_dir, attn, experts, seed=1)
                print(f"{label}: built ({note}), timing...", flush=True)
                p, d = time_transformers(torch, model, a, vocab)
                rows.append((label, p, d, note))
            except Exception as e:  # one implementation failing must not hide the others
                print(f"{label}: not run: {e}", flush=True)
                rows.append((label, None, None, f"not run: {str(e).splitlines()[0][:80]}"))
            del model
            gc.collect()
            torch.cuda.empty_cache()


def print_table(a, rows, laguna):
    w = 44
    print()
    shape = f"{a.preset}" + (f", {a.layers} layers" if a.layers else ", all layers")
    print(f"{shape}; prefill of {a.prefill} tokens; decode of {a.gen} tokens after {a.prompt}; median of {a.reps}")
    if laguna.get("copy_gbps"):
        print(
            f"device copy {laguna['copy_gbps']:.1f} GB/s (read + write): decode floor "
            f"{laguna.get('floor', 0):.1f} tok/s; laguna.c decode at {laguna.get('roofline', 0):.3f} of it"
        )
    print(f"| {'engine':<{w}} | {'prefill tok/s':>13} | {'decode tok/s':>12} | {'laguna.c prefill x':>18} | {'laguna.c decode x':>17} |")
    print(f"|{'-' * (w + 2)}|{'-' * 15}|{'-' * 14}|{'-' * 20}|{'-' * 19}|")
    lp, ld = laguna.get("prefill"), laguna.get("decode")
    for label, p, d, note in rows:
        def num(x):
            return f"{x:.1f}" if x is not None else "-"

        def ratio(ours, theirs):
            return f"{ours / theirs:.2f}" if ours and theirs else "-"

        print(f"| {label:<{w}} | {num(p):>13} | {num(d):>12} | {ratio(lp, p):>18} | {ratio(ld, d):>17} |")
    for label, p, d, note in rows:
        if note:
            print(f"  {label}: {note}")


def main():
    a = parse_args()
    prefill_cmd, decode_cmd = laguna_commands(a)
    if a.dry_run:
        print("would run:")
        print("  " + shlex.join(config_command(a, "TMPDIR")))
        if not a.skip_laguna:
            print("  " + shlex.join(prefill_cmd))
            print("  " + shlex.join(decode_cmd))
        if not a.skip_transformers:
            for attn in a.attn.split(","):
                for experts in a.experts.split(","):
                    print(
                        f"  transformers: LagunaForCausalLM(TMPDIR/config.json), bf16 on cuda, attn {attn}, "
                        f"experts {experts}: prefill {a.prefill}, decode {a.gen} after {a.prompt}, median of {a.reps}"
                    )
        print("then one table: engine, prefill tok/s, decode tok/s, laguna.c's ratios")
        return
    if not os.access(a.laguna, os.X_OK):
        raise SystemExit(f"{a.laguna}: not found or not executable (build with make, or pass --laguna)")
    rows, laguna = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg_dir = os.path.join(tmp, "config")
        cmd = config_command(a, cfg_dir)
        print("$ " + shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True, capture_output=True)
        # laguna.c first: its process (and the GPU memory it holds) ends before torch allocates
        if not a.skip_laguna:
            laguna["prefill"] = run_laguna(prefill_cmd).get("prefill")
            laguna.update({k: v for k, v in run_laguna(decode_cmd).items() if k != "prefill"})
            label = f"laguna.c {a.device}, {a.type or 'bf16'}" + (", bf16 activations" if a.bf16_activations else "")
            rows.append((label, laguna.get("prefill"), laguna.get("decode"), None))
        if not a.skip_transformers:
            run_transformers(a, cfg_dir, rows)
    print_table(a, rows, laguna)


if __name__ == "__main__":
    main()
