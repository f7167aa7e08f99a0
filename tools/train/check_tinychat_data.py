#!/usr/bin/env python3
"""Checks the training data of models/laguna-tiny-chat against laguna.c itself (dev-only).

  python3 tools/train/check_tinychat_data.py [--laguna build/laguna] [--n 300] [--seed 7]

For N generated conversations (tools/train/tinychat_data.py) and every case of
tests/data/tinychat_cases.json:
  1. render() equals `laguna template` with the released XS.2 template, for the whole
     conversation and for the generation prompt of each assistant turn (what `laguna serve`
     renders at run time), and equals jinja2 configured as transformers configures it when
     jinja2 is importable;
  2. the trained pieces of segments() start right after that generation prompt and end with
     </assistant>;
  3. tokenizing the pieces one by one (`laguna tokenize` with the chat model's tokenizer) gives
     exactly the ids of the whole text, and the generation prompt ends in the <think> or
     </think> id.
Prints one line per problem and a closing "N passed, N failed".
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import tinychat_data as D  # noqa: E402

TEMPLATE = os.path.join(ROOT, "tests", "fixtures", "chat", "laguna-real", "poolside-Laguna-XS.2.jinja")


def run(args, stdin=None):
    r = subprocess.run(args, input=stdin, capture_output=True)
    if r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout.decode()


def decoded(messages):
    """Tool-call arguments sent as JSON strings (OpenAI's shape) decoded to objects, as laguna.c
    does before rendering (jinja2 would fail on the string)."""
    out = json.loads(json.dumps(messages))
    for m in out:
        for tc in m.get("tool_calls") or []:
            if isinstance(tc["function"]["arguments"], str):
                tc["function"]["arguments"] = json.loads(tc["function"]["arguments"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--laguna", default=os.path.join(ROOT, "build", "laguna"))
    ap.add_argument("--template", default=TEMPLATE)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    try:
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        from template_reference import make_env
        jinja = make_env().from_string(open(args.template).read())
    except ImportError:
        jinja = None
        print("note: jinja2 not importable; checking against laguna template only")
    tmp = tempfile.mkdtemp()
    tok_path = os.path.join(tmp, "tokenizer.json")
    base = json.load(open(os.path.join(ROOT, "models", "laguna-tiny", "tokenizer.json")))
    json.dump(D.chat_tokenizer(base), open(tok_path, "w"), ensure_ascii=False)

    def engine_render(req):
        return run([args.laguna, "template", "-m", args.template, "-"], json.dumps(req).encode())

    cache = {}

    def tokenize(text):
        if text in cache:
            return cache[text]
        out = run([args.laguna, "tokenize", "-m", tok_path, "--no-special", "-p", "-"], text.encode())
        cache[text] = [int(x) for x in out.split()]
        return cache[text]

    reqs = D.dataset(args.n, args.seed)
    cases = json.load(open(os.path.join(ROOT, "tests", "data", "tinychat_cases.json")))["cases"]
    reqs += [dict(c["request"], add_generation_prompt=True) for c in cases]
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL", what)

    think_ids = {tokenize("<think>")[0], tokenize("</think>")[0]}
    for k, req in enumerate(reqs):
        variants = [dict(req, add_generation_prompt=bool(req.get("add_generation_prompt")))]
        msgs = req["messages"]
        for i, m in enumerate(msgs):
            if m["role"] == "assistant":
                variants.append(dict(req, messages=msgs[:i], add_generation_prompt=True))
        for v in variants:
            ours = D.render(v)
            check(ours == engine_render(v), "conversation %d: render differs from laguna template:\n%s" % (k, ours))
            if jinja:
                kw = dict(v.get("chat_template_kwargs") or {})
                ctx = {"messages": decoded(v["messages"]), "tools": v.get("tools"),
                       "add_generation_prompt": v["add_generation_prompt"], "bos_token": "<s>",
                       "eos_token": "</s>", **kw}
                check(ours == jinja.render(**ctx), "conversation %d: render differs from jinja2" % k)
        if k >= args.n:
            continue  # test cases end in a user or tool message: nothing trained
        pieces = D.segments(req)
        trained = [p for p, t in pieces if t]
        check(len(trained) >= 1 and all(p.endswith("</assistant>") for p in trained),
              "conversation %d: trained pieces %r" % (k, trained))
        whole = tokenize("".join(p for p, _ in pieces))
        ids = []
        for p, t in pieces:
            if t:
                check(ids and ids[-1] in think_ids, "conversation %d: a trained piece not after <think>/</think>" % k)
            ids += tokenize(p)
        check(ids == whole, "conversation %d: pieces tokenize differently from the whole" % k)
    n_tok = len(tokenize(D.render(reqs[0])))
    print("%d conversations + %d test cases; first one %d tokens" % (args.n, len(cases), n_tok))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
