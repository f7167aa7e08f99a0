#!/usr/bin/env python3
"""Hugging Face tokenizers' encode speed on the text bench_tokenizer uses (dev only).

Prints the same rows as build/bench/bench_tokenizer: load time, encode MB/s with
a cold word cache (a fresh Tokenizer per run) and a warm one, and decode MB/s;
medians over --runs runs, on one thread. Feed its warm-cache number to
bench_tokenizer --hf-mbps to print the ratio. Needs `pip install tokenizers`.

usage: bench/tokenizer_reference.py [--tokenizer PATH] [--file TEXT] [--runs N]
Without --file the text is the "long_source" case of the fixture's cases.json.
"""
import argparse
import json
import os
import statistics
import time

# one thread, as bench_tokenizer
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import Tokenizer, __version__  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default="tests/fixtures/tokenizer/laguna-like/tokenizer.json")
    ap.add_argument("--file")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    path = args.tokenizer
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if args.file:
        text = open(args.file, encoding="utf-8", errors="replace").read()
    else:
        cases = json.load(open("tests/fixtures/tokenizer/laguna-like/cases.json", encoding="utf-8"))["cases"]
        text = next(c["text"] for c in cases if c.get("name") == "long_source")
    size = len(text.encode("utf-8"))

    loads, cold = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(path)
        t1 = time.perf_counter()
        tok.encode(text, add_special_tokens=False)
        cold.append(time.perf_counter() - t1)
        loads.append(t1 - t0)
    warm = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        enc = tok.encode(text, add_special_tokens=False)
        warm.append(time.perf_counter() - t0)
    ids = enc.ids
    dec = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        tok.decode(ids, skip_special_tokens=False)
        dec.append(time.perf_counter() - t0)

    def row(what, seconds):
        print("%-32s %10.3f ms %10.2f MB/s" % (what, seconds * 1e3, size / 1e6 / seconds))

    print("tokenizers %s, %s (%d tokens); text %d bytes" % (__version__, path, tok.get_vocab_size(), size))
    print("%-32s %10.3f ms" % ("load tokenizer.json", statistics.median(loads) * 1e3))
    row("encode, cold word cache", statistics.median(cold))
    row("encode, warm word cache", statistics.median(warm))
    print("%-32s %10d" % ("tokens", len(ids)))
    row("decode", statistics.median(dec))


if __name__ == "__main__":
    main()
