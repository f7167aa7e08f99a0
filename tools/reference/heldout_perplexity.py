#!/usr/bin/env python3
"""Dev-only: laguna-tiny's held-out perplexity by transformers, on the exact
token ids that `laguna perplexity --tokens-file IDS --ctx 512` then scores.

Rebuilds the held-out split of tools/train/train_laguna_tiny.py (same sources,
same hash split, files sorted by path, </s> between files, first 60000 ids),
writes the ids, and prints transformers' loss over non-overlapping 512-token
windows (float32, CPU, eager attention, from the shipped bf16 weights), which
is what the training script reported and what laguna's --ctx 512 computes.

  python3 tools/reference/heldout_perplexity.py --ids-out IDS.txt [--data-mb 50]
"""
import argparse
import json
import math
import os
import sys

import torch
from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools", "train"))
from train_laguna_tiny import collect_sources, split  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(REPO, "models", "laguna-tiny"))
    ap.add_argument("--ids-out", required=True)
    ap.add_argument("--data-mb", type=int, default=50)
    ap.add_argument("--window", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    files, _ = collect_sources(args.data_mb * 1_000_000)
    _, held = split(files)
    held = sorted(held, key=lambda f: f[0])
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    ids = []
    for enc in tok.encode_batch([t for _, t in held], add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(2)
    ids = torch.tensor(ids[:60000], dtype=torch.long)
    with open(args.ids_out, "w") as f:
        f.write(" ".join(str(int(i)) for i in ids) + "\n")

    from transformers import LagunaForCausalLM
    ref = LagunaForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager").eval()
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, args.window):
            w = ids[s:s + args.window]
            if len(w) < 2:
                break
            lp = torch.log_softmax(ref(input_ids=w[None]).logits[0].double()[:-1], dim=-1)
            tot -= lp.gather(1, w[1:, None]).sum().item()
            cnt += len(w) - 1
    print(json.dumps({"heldout_files": len(held), "tokens": len(ids), "scored": cnt,
                      "loss": tot / cnt, "perplexity": math.exp(tot / cnt)}))


if __name__ == "__main__":
    main()
