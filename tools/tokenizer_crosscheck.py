#!/usr/bin/env python3
"""Cross-check laguna.c's tokenizer against Hugging Face tokenizers (dev only).

Two checks:
  1. The hand-made tokenizer.json snippets of tests/test_tokenizer.c: tokenizers
     must give the ids and text the test expects (this validates the hand
     derivations), and so must `laguna tokenize` / `laguna detokenize`.
  2. Random texts (ASCII, Unicode of many scripts, odd whitespace, added-token
     strings, emoji, ...) through each --tokenizer: ids with and without
     add_special_tokens, decode, and decode with skip_special_tokens (laguna
     drops every added token there, as transformers does for Laguna, so the
     reference decodes with all added tokens marked special).

The reference is the Python `tokenizers` package when importable; otherwise the
npm package `tokenizers` (same Rust code, 0.23.x) through node, found through
NODE_PATH or --node-modules (npm install tokenizers@0.23.2).

usage: tools/tokenizer_crosscheck.py [--laguna build/laguna] [--tokenizer PATH]...
                                     [--n 300] [--seed 1] [--node-modules DIR]
Prints one line per problem and a closing "N passed, N failed".
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

FIXTURE = "tests/fixtures/tokenizer/laguna-like/tokenizer.json"

# ---- the snippets of tests/test_tokenizer.c (single quotes -> double) ----
SNIP_METASPACE = (
    "{'version': '1.0', 'added_tokens': [{'id': 0, 'content': '<unk>', 'special': true}],"
    " 'pre_tokenizer': {'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'always', 'split': true},"
    " 'decoder': {'type': 'Sequence', 'decoders': [{'type': 'ByteFallback'},"
    "   {'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'always'}]},"
    " 'model': {'type': 'BPE', 'unk_token': '<unk>', 'fuse_unk': true, 'byte_fallback': true,"
    "  'vocab': {'<unk>': 0, '<s>': 1, '</s>': 2, '<0xC3>': 3, '<0xA9>': 4, '<0x21>': 5, '▁': 6, 'h': 7, 'e': 8,"
    "   'l': 9, 'o': 10, 'w': 11, 'r': 12, 'd': 13, 'he': 14, 'll': 15, 'llo': 16, 'hello': 17, '▁hello': 18},"
    "  'merges': [['h', 'e'], ['l', 'l'], ['ll', 'o'], ['he', 'llo'], ['▁', 'hello']]}}")


def split_snippet(pattern, behavior, invert):
    return ("{'version': '1.0', 'pre_tokenizer': {'type': 'Split', 'pattern': " + pattern + ", 'behavior': '" +
            behavior + "', 'invert': " + invert + "}, 'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 1, '-': 2,"
            " 'a-': 3, '-b': 4, '--': 5, 'a-b': 6}, 'merges': ['a -', '- b', '- -', 'a- b']}}")


SNIP_NORMALIZERS = (
    "{'version': '1.0', 'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'NFKC'}, {'type': 'Lowercase'},"
    "  {'type': 'Replace', 'pattern': {'Regex': '\\\\s+'}, 'content': ' '}, {'type': 'Strip', 'strip_left': true,"
    "  'strip_right': true}, {'type': 'Prepend', 'prepend': '^'}]},"
    " 'decoder': {'type': 'Fuse'}, 'model': {'type': 'BPE', 'vocab': {'^': 0, 'a': 1, 'b': 2, ' ': 3, 'c': 4}, 'merges': []}}")
SNIP_NFD = (
    "{'version': '1.0', 'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'NFD'}, {'type': 'StripAccents'}]},"
    " 'model': {'type': 'BPE', 'vocab': {'e': 0, '\u0301': 1, 'x': 2}, 'merges': []}}")
SNIP_TEMPLATE = (
    "{'version': '1.0', 'added_tokens': [{'id': 0, 'content': '<s>', 'special': true},"
    "  {'id': 1, 'content': '</s>', 'special': true},"
    "  {'id': 2, 'content': '<mask>', 'lstrip': true, 'rstrip': true, 'special': true},"
    "  {'id': 3, 'content': 'cat', 'single_word': true, 'special': false},"
    "  {'id': 4, 'content': 'Hi', 'normalized': true, 'special': false}],"
    " 'normalizer': {'type': 'Lowercase'}, 'pre_tokenizer': {'type': 'WhitespaceSplit'},"
    " 'post_processor': {'type': 'TemplateProcessing', 'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}},"
    "   {'Sequence': {'id': 'A', 'type_id': 0}}, {'SpecialToken': {'id': '</s>', 'type_id': 0}}], 'pair': [],"
    "  'special_tokens': {'<s>': {'id': '<s>', 'ids': [0], 'tokens': ['<s>']},"
    "   '</s>': {'id': '</s>', 'ids': [1], 'tokens': ['</s>']}}},"
    " 'model': {'type': 'BPE', 'vocab': {'<s>': 0, '</s>': 1, '<mask>': 2, 'cat': 3, 'Hi': 4, 'a': 5, 'b': 6, 'c': 7,"
    "  'o': 8, 'n': 9, 't': 10, '.': 11, 'h': 12, 'i': 13}, 'merges': []}}")
SNIP_AFFIXES = (
    "{'version': '1.0', 'pre_tokenizer': {'type': 'Whitespace'}, 'decoder': {'type': 'BPEDecoder', 'suffix': '</w>'},"
    " 'model': {'type': 'BPE', 'continuing_subword_prefix': '##', 'end_of_word_suffix': '</w>',"
    "  'vocab': {'a': 0, '##b': 1, '##c</w>': 2, 'ab': 3, 'abc</w>': 4, 'a</w>': 5, '##b</w>': 6},"
    "  'merges': [['a', '##b'], ['ab', '##c</w>']]}}")
SNIP_IGNORE_MERGES = (
    "{'version': '1.0', 'pre_tokenizer': {'type': 'WhitespaceSplit'},"
    " 'model': {'type': 'BPE', 'ignore_merges': true, 'vocab': {'a': 0, 'b': 1, 'c': 2, 'ab': 3, 'abc': 4, 'bc': 5},"
    "  'merges': ['b c', 'a b']}}")

SNIPPET_CASES = [
    (SNIP_METASPACE, "hello world!", False, [18, 6, 11, 10, 12, 9, 13, 5], "hello world!"),
    (SNIP_METASPACE, "é üü", False, [6, 3, 4, 6, 0], "é <unk>"),
    (SNIP_METASPACE, "", False, [], ""),
    (split_snippet("{'String': '-'}", "Isolated", "false"), "a-b", False, [0, 2, 1], "a - b"),
    (split_snippet("{'String': '-'}", "Isolated", "false"), "a--b", False, [0, 2, 2, 1], "a - - b"),
    (split_snippet("{'String': '-'}", "Removed", "false"), "a-b", False, [0, 1], "a b"),
    (split_snippet("{'String': '-'}", "MergedWithPrevious", "false"), "a-b", False, [3, 1], "a- b"),
    (split_snippet("{'Regex': '-'}", "MergedWithNext", "false"), "a-b", False, [0, 4], "a -b"),
    (split_snippet("{'Regex': '-'}", "Contiguous", "false"), "a--b", False, [0, 5, 1], "a -- b"),
    (split_snippet("{'String': '-'}", "Removed", "true"), "a-b", False, [2], "-"),
    (SNIP_NORMALIZERS, "  ＡＢ\t\tC  ", False, [0, 1, 2, 3, 4], "^ab c"),
    (SNIP_NORMALIZERS, "   ", False, [], ""),
    (SNIP_NFD, "éx", False, [0, 2], "e x"),
    (SNIP_TEMPLATE, "a <mask> b", False, [5, 2, 6], "a <mask> b"),
    (SNIP_TEMPLATE, "a <mask> b", True, [0, 5, 2, 6, 1], "<s> a <mask> b </s>"),
    (SNIP_TEMPLATE, "cat concat cat.", False, [3, 7, 8, 9, 7, 5, 10, 3, 11], "cat c o n c a t cat ."),
    (SNIP_TEMPLATE, "HI hi", False, [4, 4], "hi hi"),
    (SNIP_AFFIXES, "abc a ab, x", False, [4, 5, 0, 6], "abc a a##b"),
    (SNIP_IGNORE_MERGES, "abc abcabc", False, [4, 0, 5, 0, 5], "abc a bc a bc"),
]

# ---- the reference: Python tokenizers, or the npm package through node ----

NODE_HELPER = r"""
const {Tokenizer} = require('tokenizers');
const fs = require('fs');
(async () => {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const tok = Tokenizer.fromString(job.json);
  const j = JSON.parse(job.json);
  for (const t of (j.added_tokens || [])) t.special = true;
  const all = Tokenizer.fromString(JSON.stringify(j));
  const out = [];
  for (const [text, special] of job.texts) {
    const ids = (await tok.encode(text, null, {addSpecialTokens: special})).getIds();
    out.push({ids, dec: await tok.decode(ids, false), dec_skip: await all.decode(ids, true)});
  }
  console.log(JSON.stringify(out));
})();
"""


class Reference:
    def __init__(self, node_modules):
        self.node_modules = node_modules
        try:
            import tokenizers  # noqa: F401
            self.py = True
            self.name = "tokenizers %s (Python)" % tokenizers.__version__
        except ImportError:
            self.py = False
            self.name = "tokenizers (npm, through node)"

    def run(self, tokenizer_json, texts):
        """[(text, add_special)] -> [{ids, dec, dec_skip}] from Hugging Face."""
        # tokenizers insists on every added-token field; laguna (and these
        # snippets) take tokenizers' AddedToken defaults for missing ones
        j = json.loads(tokenizer_json)
        for t in j.get("added_tokens") or []:
            for key in ("single_word", "lstrip", "rstrip"):
                t.setdefault(key, False)
            t.setdefault("special", False)
            t.setdefault("normalized", not t["special"])
        tokenizer_json = json.dumps(j, ensure_ascii=False)
        if self.py:
            from tokenizers import Tokenizer
            tok = Tokenizer.from_str(tokenizer_json)
            j = json.loads(tokenizer_json)
            for t in j.get("added_tokens") or []:
                t["special"] = True
            all_special = Tokenizer.from_str(json.dumps(j))
            out = []
            for text, special in texts:
                ids = tok.encode(text, add_special_tokens=special).ids
                out.append({"ids": ids, "dec": tok.decode(ids, skip_special_tokens=False),
                            "dec_skip": all_special.decode(ids, skip_special_tokens=True)})
            return out
        with tempfile.TemporaryDirectory() as d:
            helper, job = os.path.join(d, "ref.js"), os.path.join(d, "job.json")
            open(helper, "w").write(NODE_HELPER)
            json.dump({"json": tokenizer_json, "texts": texts}, open(job, "w"))
            env = dict(os.environ)
            if self.node_modules:
                env["NODE_PATH"] = self.node_modules
            r = subprocess.run(["node", helper, job], capture_output=True, text=True, env=env)
            if r.returncode:
                sys.exit("node reference failed: " + r.stderr.strip()[:600])
            return json.loads(r.stdout)


# ---- laguna through its CLI ----

class Laguna:
    def __init__(self, binary):
        self.binary = binary

    def run(self, tokenizer_path, texts):
        out = []
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "text.txt")
            for text, special in texts:
                open(f, "wb").write(text.encode("utf-8"))
                args = [self.binary, "tokenize", tokenizer_path, "--file", f] + ([] if special else ["--no-special"])
                r = subprocess.run(args, capture_output=True)
                if r.returncode:
                    out.append({"error": r.stderr.decode(errors="replace").strip()})
                    continue
                ids = [int(x) for x in r.stdout.split()]
                res = {"ids": ids}
                for key, flag in (("dec", []), ("dec_skip", ["--skip-special"])):
                    r = subprocess.run([self.binary, "detokenize", tokenizer_path] + flag + [str(i) for i in ids],
                                       capture_output=True)
                    res[key] = r.stdout.decode("utf-8", errors="replace")[:-1]  # the CLI adds a newline
                out.append(res)
        return out


def random_texts(rng, n):
    pieces = ["hello", "World", " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \t ", "123", "4567", "3.14", "'s", "'S",
              "'ll", "'LL", "'re", "'d", "don't", "I'M", "é", "ß", "ſ", "İ", "ǅ", "Ω", "Привет", "日本語", "한국어",
              "عربى", "\u0301", "e\u0301", "👨\u200d👩", "🙂", "\u0085", "\u00a0", "\u2028", "\u3000", "\u200b", "<s>",
              "</s>", "<think>", "</think>", " <s> ", "<|fim_middle|>", "<unk>", "<", ">", "</", "{", "}", "(", ")",
              ";", "!!", "...", "__init__", "x", "ab", "Ġ", "▁", "##", "½", "²", "Ⅳ", "_", "$", "€", "0x1F", "\ufffd"]
    ranges = [(0x20, 0x7e), (0xa0, 0x2ff), (0x300, 0x36f), (0x370, 0x52f), (0x590, 0x6ff), (0x900, 0x9ff),
              (0x2000, 0x206f), (0x2070, 0x2bff), (0x3000, 0x30ff), (0x4e00, 0x4eff), (0xac00, 0xacff),
              (0xff00, 0xffef), (0x1f300, 0x1faff)]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.15:
                lo, hi = rng.choice(ranges)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4))))
            else:
                parts.append(rng.choice(pieces))
        out.append("".join(parts))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--laguna", default="build/laguna")
    ap.add_argument("--tokenizer", action="append", help="tokenizer.json or checkpoint folder (repeatable)")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--node-modules", default=None, help="folder holding node_modules/tokenizers")
    args = ap.parse_args()
    ref, lag = Reference(args.node_modules), Laguna(args.laguna)
    print("reference:", ref.name)
    passed = failed = 0

    def report(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL", what)

    with tempfile.TemporaryDirectory() as d:
        for i, (snip, text, special, ids, decoded) in enumerate(SNIPPET_CASES):
            js = snip.replace("'", '"')
            path = os.path.join(d, "snippet%d.json" % i)
            open(path, "w").write(js)
            want = {"ids": ids, "dec": decoded}
            for name, got in (("tokenizers", ref.run(js, [(text, special)])[0]), ("laguna", lag.run(path, [(text, special)])[0])):
                ok = got.get("ids") == ids and got.get("dec") == decoded
                report(ok, "snippet %d %r: %s gave %s, expected %s" % (i, text, name, got, want))

    rng = random.Random(args.seed)
    for path in args.tokenizer or [FIXTURE]:
        file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
        js = open(file, encoding="utf-8").read()
        texts = [(t, rng.random() < 0.3) for t in random_texts(rng, args.n)]
        want, got = ref.run(js, texts), lag.run(path, texts)
        for (text, special), w, g in zip(texts, want, got):
            for key in ("ids", "dec", "dec_skip"):
                report(w.get(key) == g.get(key),
                       "%s %r (add_special=%s) %s: laguna %s, tokenizers %s" % (path, text, special, key, g.get(key, g), w.get(key)))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
