#!/usr/bin/env python3
"""Train laguna-tiny: a small Laguna (every architectural feature on) that ships with laguna.c.

Dev-only; runs on a GPU machine with PyTorch, transformers 5.17 (LagunaForCausalLM) and
tokenizers 0.23, and no network. Exact command used for the shipped model:

    python3 tools/train/train_laguna_tiny.py --out $OUT/laguna-tiny --minutes 7 --seed 1234

What it does, in order:
  1. collects Python source files of the standard library and of a few permissively licensed
     installed packages (see LICENSED_PACKAGES); every 40th file (by a hash of its path) is held
     out for evaluation, and a ~5 kB piece of one held-out file becomes heldout_sample.txt;
  2. trains a byte-level BPE tokenizer (8192 ids) with Laguna's layout: the 32 control tokens of
     tests/fixtures/tokenizer/laguna-like at ids 0-31 and the same pre-tokenizer (newline split,
     GPT-4-style regex with single digits, ByteLevel);
  3. trains LagunaForCausalLM (sliding/global 3:1, per-layer head counts, YaRN + partial rotary on
     global layers, per-head softplus gate, dense first layer, shared expert, sigmoid router with
     the auxiliary-loss-free bias update of arXiv:2408.15664) for --minutes;
  4. saves bf16 weights (sharded under 15 MB), tokenizer, chat template, configs;
  5. computes, in float32 on the CPU with eager attention from the saved bf16 weights, the held-out
     loss, the sample perplexity, expert load, and golden.safetensors in the fixtures' format.
"""
import argparse, glob, hashlib, json, math, os, random, sys, sysconfig, time

import torch
from tokenizers import Tokenizer, trainers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
from golden import prompt_entries  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE_TOKENIZER = os.path.join(REPO, "tests/fixtures/tokenizer/laguna-like/tokenizer.json")
CHAT_TEMPLATE = os.path.join(REPO, "tests/fixtures/tiny-xs/chat_template.jinja")
# package -> licence, used only if installed; all permissive
LICENSED_PACKAGES = {"numpy": "BSD-3-Clause", "networkx": "BSD-3-Clause", "sympy": "BSD-3-Clause",
                     "requests": "Apache-2.0", "jinja2": "BSD-3-Clause", "click": "BSD-3-Clause",
                     "packaging": "Apache-2.0 or BSD-2-Clause", "setuptools": "MIT", "pip": "MIT",
                     "transformers": "Apache-2.0", "tokenizers": "Apache-2.0", "safetensors": "Apache-2.0"}
PROMPTS = ["def fibonacci(n):", "import os\n", "class Stack:\n    def __init__(self):",
           "for i in range(", "# Read a text file and count its lines\ndef count_lines(path):"]


def log(*a):
    print(*a, flush=True)


def collect_sources(max_bytes):
    roots = [("python-stdlib", "PSF-2.0", sysconfig.get_paths()["stdlib"])]
    site = sysconfig.get_paths()["purelib"]
    for pkg, lic in LICENSED_PACKAGES.items():
        p = os.path.join(site, pkg)
        if os.path.isdir(p):
            roots.append((pkg, lic, p))
    files, used = [], []
    total = 0
    for name, lic, root in roots:
        n0 = len(files)
        for path in sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)):
            if "site-packages" in path and name == "python-stdlib":
                continue
            try:
                text = open(path, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            if not text.strip() or len(text) > 400_000:
                continue
            files.append((path, text))
            total += len(text)
            if total > max_bytes:
                break
        used.append({"source": name, "licence": lic, "files": len(files) - n0})
        if total > max_bytes:
            break
    return files, used


def split(files):
    train, held = [], []
    for path, text in files:
        h = int(hashlib.sha1(path.encode()).hexdigest(), 16)
        (held if h % 40 == 0 else train).append((path, text))
    return train, held


def train_tokenizer(texts, vocab_size):
    fixture = json.load(open(FIXTURE_TOKENIZER))
    controls = [t["content"] for t in sorted(fixture["added_tokens"], key=lambda t: t["id"])]
    base = Tokenizer.from_file(FIXTURE_TOKENIZER)
    from tokenizers.pre_tokenizers import ByteLevel
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=controls, show_progress=False,
                                  initial_alphabet=ByteLevel.alphabet())
    base.train_from_iterator(texts, trainer)
    trained = json.loads(base.to_str())
    trained["added_tokens"] = fixture["added_tokens"]  # same ids, flags (special or not) as Laguna's layout
    for t in fixture["added_tokens"]:
        assert trained["model"]["vocab"][t["content"]] == t["id"], t
    tok = Tokenizer.from_str(json.dumps(trained, ensure_ascii=False))
    return tok, trained


def make_config(vocab_size):
    from transformers import LagunaConfig
    layers = 8
    layer_types = ["full_attention" if i % 4 == 0 else "sliding_attention" for i in range(layers)]
    return LagunaConfig(
        vocab_size=vocab_size, hidden_size=256, intermediate_size=768, num_hidden_layers=layers,
        num_attention_heads=8, num_key_value_heads=2, head_dim=32,
        num_attention_heads_per_layer=[4 if t == "full_attention" else 8 for t in layer_types],
        layer_types=layer_types, sliding_window=128, mlp_layer_types=["dense"] + ["sparse"] * (layers - 1),
        num_experts=16, num_experts_per_tok=4, moe_intermediate_size=64, shared_expert_intermediate_size=128,
        moe_routed_scaling_factor=2.5, moe_router_logit_softcapping=0.0, gating=True,
        max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=[2, 24], pad_token_id=9,
        rope_parameters={
            "full_attention": {"rope_type": "yarn", "rope_theta": 100000.0, "partial_rotary_factor": 0.5,
                               "factor": 4.0, "original_max_position_embeddings": 512,
                               "beta_fast": 32.0, "beta_slow": 1.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
        })


class RouterWatch:
    """Counts the experts each sparse layer's router selects (forward hooks)."""

    def __init__(self, model):
        self.counts = {}
        self.last = {}
        self.handles = []
        for i, layer in enumerate(model.model.layers):
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None and hasattr(gate, "e_score_correction_bias"):
                self.handles.append(gate.register_forward_hook(self._hook(i)))

    def _hook(self, i):
        def hook(module, inputs, output):
            selected = output[2]
            self.last[i] = selected.detach()
            n = module.num_experts
            c = torch.bincount(selected.reshape(-1), minlength=n)
            self.counts[i] = self.counts.get(i, 0) + c
        return hook

    def reset(self):
        self.counts = {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--data-mb", type=float, default=60)
    args = ap.parse_args()
    t_start = time.time()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"

    files, used = collect_sources(int(args.data_mb * 1e6))
    train_files, held_files = split(files)
    log(f"data: {len(files)} files, {sum(len(t) for _, t in files)/1e6:.1f} MB; held out {len(held_files)} files")
    random.shuffle(train_files)
    tok, tok_json = train_tokenizer([t for _, t in train_files], 8192)
    V = len(tok_json["model"]["vocab"])
    log(f"tokenizer: {V} ids ({time.time()-t_start:.0f} s)")

    # held-out sample for the C test: a piece of one held-out file, cut at a line end
    held_sorted = sorted(held_files, key=lambda f: f[0])
    sample_src = next(t for _, t in held_sorted if len(t) > 8000)
    sample = sample_src[:5000]
    sample = sample[: sample.rfind("\n") + 1]

    def encode_all(texts):
        out = []
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            out.extend(enc.ids)
            out.append(2)  # </s> between files
        return torch.tensor(out, dtype=torch.long)

    train_ids = encode_all([t for _, t in train_files])
    held_ids = encode_all([t for _, t in held_sorted])[:60000]
    log(f"tokens: train {len(train_ids)}, held-out {len(held_ids)}")

    from transformers import LagunaForCausalLM
    cfg = make_config(V)
    try:
        model = LagunaForCausalLM._from_config(cfg, attn_implementation="sdpa").to(dev)
    except Exception as e:  # fall back to the reference attention
        log(f"sdpa unavailable ({e}); eager attention")
        model = LagunaForCausalLM(cfg).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params/1e6:.2f}M parameters")
    watch = RouterWatch(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, betas=(0.9, 0.95),
                            weight_decay=0.1)
    seq, batch, gamma = 512, 64, 1e-3
    budget = args.minutes * 60
    t0 = time.time()
    step = 0
    g = torch.Generator().manual_seed(args.seed)
    est_steps = None
    while True:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        if step == 20:
            est_steps = int(budget / (elapsed / 20))
        frac = elapsed / budget
        lr = 3e-3 * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for pg in opt.param_groups:
            pg["lr"] = lr
        starts = torch.randint(0, len(train_ids) - seq - 1, (batch,), generator=g)
        x = torch.stack([train_ids[s:s + seq] for s in starts]).to(dev)
        watch.reset()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            out = model(input_ids=x, labels=x)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        # auxiliary-loss-free balancing (arXiv:2408.15664): nudge each expert's selection bias
        with torch.no_grad():
            for i, c in watch.counts.items():
                bias = model.model.layers[i].mlp.gate.e_score_correction_bias
                c = c.float()
                bias += gamma * torch.sign(c.mean() - c).to(bias.dtype)
        if step % 50 == 0:
            log(f"step {step} loss {out.loss.item():.4f} lr {lr:.2e} t {elapsed:.0f}s")
        step += 1
    log(f"trained {step} steps, {step*batch*seq/1e6:.1f}M tokens in {time.time()-t0:.0f} s")
    for h in watch.handles:
        h.remove()

    # ---- save -------------------------------------------------------------------------
    model = model.to(torch.bfloat16).cpu()
    model.save_pretrained(args.out, max_shard_size="14MB")
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
               "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": False, "model_max_length": 2048},
              open(os.path.join(args.out, "tokenizer_config.json"), "w"), indent=2)
    open(os.path.join(args.out, "tokenizer.json"), "w").write(json.dumps(tok_json, ensure_ascii=False, indent=2))
    open(os.path.join(args.out, "chat_template.jinja"), "w").write(open(CHAT_TEMPLATE).read())
    open(os.path.join(args.out, "heldout_sample.txt"), "w").write(sample)

    # ---- reference numbers: float32, CPU, eager, from the saved bf16 weights -----------
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ref = LagunaForCausalLM.from_pretrained(args.out, dtype=torch.float32, attn_implementation="eager").eval()
    watch = RouterWatch(ref)

    @torch.no_grad()
    def nll(ids):
        logits = ref(input_ids=ids[None]).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        return -lp.gather(1, ids[1:, None]).sum().item(), len(ids) - 1

    tot, cnt = 0.0, 0
    for s in range(0, len(held_ids) - 1, 512):
        a, b = nll(held_ids[s:s + 512])
        tot, cnt = tot + a, cnt + b
    held_loss = tot / cnt
    load = {i: c.tolist() for i, c in watch.counts.items()}
    sample_ids = torch.tensor(tok.encode(sample, add_special_tokens=False).ids)
    assert len(sample_ids) <= cfg.max_position_embeddings
    a, b = nll(sample_ids)
    sample_ppl = math.exp(a / b)
    log(f"held-out loss {held_loss:.4f} (ppl {math.exp(held_loss):.3f}); sample: {len(sample_ids)} tokens, ppl {sample_ppl:.6f}")

    golden, continuations = {}, []
    longest = max(range(len(PROMPTS)), key=lambda k: len(tok.encode(PROMPTS[k], add_special_tokens=False).ids))
    for k, text in enumerate(PROMPTS):
        p = f"p{k + 1}"
        ids = torch.tensor(tok.encode(text, add_special_tokens=False).ids)
        entries, out_ids = prompt_entries(ref, watch, ids, p, with_hidden=k == longest)
        golden.update(entries)
        continuations.append({"prompt": text, "greedy40_text": tok.decode(out_ids, skip_special_tokens=False)})
    from safetensors.torch import save_file
    save_file(golden, os.path.join(args.out, "golden.safetensors"))

    per_layer = {str(i): {"max": max(c), "mean": sum(c) / len(c), "max_over_mean": max(c) / (sum(c) / len(c)),
                          "unused": sum(1 for v in c if v == 0)} for i, c in load.items()}
    reference = {
        "command": "python3 tools/train/train_laguna_tiny.py " + " ".join(sys.argv[1:]),
        "transformers": __import__("transformers").__version__, "torch": torch.__version__,
        "parameters": n_params, "train_steps": step, "train_tokens": step * batch * seq,
        "data": used, "heldout_files": len(held_files), "heldout_tokens": cnt,
        "heldout_loss": held_loss, "heldout_perplexity": math.exp(held_loss),
        "sample_file": "heldout_sample.txt", "sample_tokens": len(sample_ids),
        "sample_perplexity": sample_ppl,
        "sample_perplexity_definition": "exp(mean NLL of tokens 1..n-1 of the sample as one sequence, "
                                        "no special tokens, float32 CPU eager from the bf16 weights)",
        "expert_load_heldout": per_layer, "prompts": continuations,
        "seconds_total": time.time() - t_start,
    }
    json.dump(reference, open(os.path.join(args.out, "reference.json"), "w"), indent=2, ensure_ascii=False)
    log(json.dumps({k: reference[k] for k in ("parameters", "train_steps", "heldout_loss", "sample_perplexity")}))
    for c in continuations:
        log(repr(c["prompt"]), "->", repr(c["greedy40_text"]))


if __name__ == "__main__":
    main()
