#!/usr/bin/env python3
"""Dev-only: Laguna checkpoints of shapes and options the shared fixtures do not
cover, with reference outputs from transformers' LagunaForCausalLM.

Each variant is a tiny random checkpoint (weights rounded to bf16-representable
float32, as the shared fixtures are) plus golden.safetensors in the fixtures'
format (tokens.P, logits.P, hidden.p70, experts.LK.p70, greedy40.P), computed in
float32 on the CPU with eager attention. What each variant exercises is in
VARIANTS below: config defaults (no layer_types, no per-layer heads, no
rope_parameters), tied embeddings, an int eos id, per-element gate, YaRN with
attention_factor / mscale / truncate=false / partial rotary 0.25, router
soft-capping, uneven query groups (1, 2 and 3 q heads per KV head), multi-query
attention, attention bias, a dense layer after sparse ones, top-1 routing.

  python3 tools/reference/make_variants.py --out DIR   # on a machine with transformers 5.17

The C test tests/test_variants.c runs `laguna verify` logic on every folder.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train"))
from golden import prompt_entries  # noqa: E402
from train_laguna_tiny import RouterWatch  # noqa: E402  (its .last holds the chosen experts)

BASE = dict(vocab_size=512, hidden_size=64, intermediate_size=96, num_key_value_heads=2, head_dim=16,
            num_experts=8, num_experts_per_tok=2, moe_intermediate_size=24, shared_expert_intermediate_size=32,
            max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=None)

VARIANTS = {
    # Everything the config may leave out, left out: transformers' defaults decide.
    # (STRIP lists the keys deleted from the saved config.json before the reference reloads it.)
    "defaults-tied": dict(num_hidden_layers=3, num_attention_heads=4, tie_word_embeddings=True),
    # YaRN options the released models do not use, on global layers only; soft-capped router;
    # query groups of 1, 2 and 3 heads per KV head; per-element gate.
    "yarn-options": dict(
        num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=3, head_dim=32,
        num_attention_heads_per_layer=[3, 6, 9], layer_types=["full_attention"] * 3,
        mlp_layer_types=["dense", "sparse", "sparse"], gating="per-element", num_experts=6,
        num_experts_per_tok=3, moe_router_logit_softcapping=5.0, moe_routed_scaling_factor=1.0,
        rms_norm_eps=1e-5, eos_token_id=[2, 7, 24],
        rope_parameters={"full_attention": {
            "rope_type": "yarn", "rope_theta": 20000.0, "partial_rotary_factor": 0.25, "factor": 4.0,
            "original_max_position_embeddings": 16, "beta_fast": 8.0, "beta_slow": 2.0,
            "mscale": 1.0, "mscale_all_dim": 0.5, "truncate": False}}),
    "yarn-attention-factor": dict(
        num_hidden_layers=2, num_attention_heads=4, layer_types=["full_attention", "sliding_attention"],
        sliding_window=6, gating=True,
        rope_parameters={
            "full_attention": {"rope_type": "yarn", "rope_theta": 50000.0, "partial_rotary_factor": 1.0,
                               "factor": 3.0, "original_max_position_embeddings": 20, "attention_factor": 1.3},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}}),
    # Multi-query attention, attention bias, sliding first, a dense layer between sparse ones, top-1.
    "mqa-bias-mixed": dict(
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1, head_dim=8, attention_bias=True,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"],
        sliding_window=5, mlp_layer_types=["sparse", "dense", "sparse", "dense"], num_experts_per_tok=1,
        gating=True,
        rope_parameters={
            "full_attention": {"rope_type": "yarn", "rope_theta": 500000.0, "partial_rotary_factor": 0.5,
                               "factor": 2.0, "original_max_position_embeddings": 16},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}}),
}


STRIP = {"defaults-tied": ["layer_types", "num_attention_heads_per_layer", "mlp_layer_types", "rope_parameters",
                           "sliding_window", "gating", "moe_router_logit_softcapping", "moe_routed_scaling_factor",
                           "rms_norm_eps", "attention_bias", "moe_apply_router_weight_on_input"]}


def randomise(model, gen):
    """Weights large enough that routing, gates and norms all matter; bf16-representable."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            elif "e_score_correction_bias" in name:
                v = 0.3 * torch.randn(p.shape, generator=gen)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = torch.randn(p.shape, generator=gen) / (p.shape[-1] ** 0.5)
            p.copy_(v.to(torch.bfloat16).float())
        for name, b in model.named_buffers():
            if "e_score_correction_bias" in name:
                b.copy_((0.3 * torch.randn(b.shape, generator=gen)).to(torch.bfloat16).float())


def make_one(name, kwargs, out_dir, seed):
    from safetensors.torch import save_file
    from transformers import LagunaConfig, LagunaForCausalLM

    cfg = LagunaConfig(**{**BASE, **kwargs})
    torch.manual_seed(seed)
    model = LagunaForCausalLM._from_config(cfg, attn_implementation="eager").float().eval()
    gen = torch.Generator().manual_seed(seed)
    randomise(model, gen)
    d = os.path.join(out_dir, name)
    model.save_pretrained(d)
    if name in STRIP:
        path = os.path.join(d, "config.json")
        full = json.load(open(path))
        json.dump({k: v for k, v in full.items() if k not in STRIP[name]}, open(path, "w"), indent=2)
        try:
            LagunaForCausalLM.from_pretrained(d, dtype=torch.float32)
        except Exception as e:  # transformers needs some of them: keep the full config
            print("  keeping the full config of", name, ":", type(e).__name__, e, flush=True)
            json.dump(full, open(path, "w"), indent=2)
    # reload what was saved, so the reference is computed from the files the engine reads
    ref = LagunaForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    watch = RouterWatch(ref)
    V = cfg.vocab_size
    golden = {}
    for p, n in (("p1", 1), ("p13", 13), ("p70", 70)):
        ids = torch.randint(3, V, (n,), generator=gen)
        golden.update(prompt_entries(ref, watch, ids, p, with_hidden=p == "p70")[0])
    save_file(golden, os.path.join(d, "golden.safetensors"))
    return {"variant": name, "config": json.load(open(os.path.join(d, "config.json")))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    import transformers
    print("transformers", transformers.__version__, "torch", torch.__version__, flush=True)
    ok = 0
    for k, (name, kw) in enumerate(VARIANTS.items()):
        try:
            make_one(name, kw, args.out, args.seed + k)
            print("made", name, flush=True)
            ok += 1
        except Exception as e:  # report and go on: one unsupported option must not hide the rest
            print("FAILED", name, type(e).__name__, e, flush=True)
    sys.exit(0 if ok == len(VARIANTS) else 1)


if __name__ == "__main__":
    main()
