"""Dev-only: one prompt's reference entries in the fixtures' golden format
(tests/fixtures/README.md), from a transformers LagunaForCausalLM. Shared by
tools/train/train_laguna_tiny.py and tools/reference/make_variants.py."""
import torch


def prompt_entries(ref, watch, ids, p, with_hidden, n_greedy=40):
    """tokens.P, logits.P, greedy40.P, and for with_hidden also hidden.P and
    experts.LK.P (watch.last: layer -> chosen experts of the last forward).
    Greedy decoding uses the KV cache and does not stop at end-of-sequence ids.
    Returns (entries, greedy ids)."""
    out = {}
    watch.last = {}
    with torch.no_grad():
        o = ref(input_ids=ids[None], output_hidden_states=True)
    out[f"tokens.{p}"] = ids.to(torch.int32)
    out[f"logits.{p}"] = o.logits[0].float().contiguous()
    if with_hidden:
        out[f"hidden.{p}"] = torch.stack([h[0] for h in o.hidden_states]).float().contiguous()
        for i, sel in watch.last.items():
            out[f"experts.L{i}.{p}"] = sel.to(torch.int32).contiguous()
    greedy, past, nxt = [], None, ids[None]
    with torch.no_grad():
        for _ in range(n_greedy):
            o = ref(input_ids=nxt, past_key_values=past, use_cache=True)
            past = o.past_key_values
            t = int(o.logits[0, -1].argmax())
            greedy.append(t)
            nxt = torch.tensor([[t]])
    out[f"greedy{n_greedy}.{p}"] = torch.tensor(greedy, dtype=torch.int32)
    return out, greedy
