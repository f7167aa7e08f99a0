#!/usr/bin/env node
/* Hugging Face tokenizers' encode speed on the text bench_tokenizer uses (dev only).
 *
 * The node twin of bench/tokenizer_reference.py, for where the npm package
 * `tokenizers` (the same Rust code, 0.23.x) installs and the Python one does
 * not. Prints the same rows as build/bench/bench_tokenizer: load time, encode
 * MB/s with a cold word cache (a fresh Tokenizer per run) and a warm one, and
 * decode MB/s; medians over --runs runs, on one thread. Feed its warm-cache
 * number to bench_tokenizer --hf-mbps to print the ratio. The timings include
 * the node binding's call overhead (one async call per encode), as the Python
 * numbers include pyo3's.
 *
 * usage: bench/tokenizer_reference.mjs [--tokenizer PATH] [--file TEXT] [--runs N]
 *                                      [--node-modules DIR]
 * The module comes from --node-modules DIR or NODE_PATH (npm install tokenizers@0.23.2).
 * Without --file the text is the "long_source" case of the fixture's cases.json. */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

// one thread, as bench_tokenizer (set before the native module loads)
process.env.RAYON_NUM_THREADS ??= "1";
process.env.TOKENIZERS_PARALLELISM ??= "false";

const args = { tokenizer: "tests/fixtures/tokenizer/laguna-like/tokenizer.json", runs: "15" };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, "").replace("-", "_");
  if (!(key in { tokenizer: 1, file: 1, runs: 1, node_modules: 1 }) || i + 1 >= process.argv.length) {
    console.error("usage: tokenizer_reference.mjs [--tokenizer P] [--file TEXT] [--runs N] [--node-modules DIR]");
    process.exit(2);
  }
  args[key] = process.argv[i + 1];
}
const dirs = [args.node_modules, ...(process.env.NODE_PATH || "").split(path.delimiter)].filter(Boolean);
const require = createRequire(import.meta.url);
const main = require.resolve("tokenizers", dirs.length ? { paths: dirs } : undefined);
const { Tokenizer } = require(main);
const version = JSON.parse(fs.readFileSync(path.join(path.dirname(main), "package.json"), "utf8")).version;

let file = args.tokenizer;
if (fs.statSync(file).isDirectory()) file = path.join(file, "tokenizer.json");
const text = args.file
  ? fs.readFileSync(args.file).toString("utf8")
  : JSON.parse(fs.readFileSync("tests/fixtures/tokenizer/laguna-like/cases.json", "utf8"))
      .cases.find((c) => c.name === "long_source").text;
const size = Buffer.byteLength(text, "utf8");
const runs = Math.max(1, parseInt(args.runs, 10) || 15);
const now = () => Number(process.hrtime.bigint()) / 1e9;
const median = (v) => {
  const s = [...v].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const row = (what, sec) =>
  console.log(`${what.padEnd(32)} ${(sec * 1e3).toFixed(3).padStart(10)} ms ${(size / 1e6 / sec).toFixed(2).padStart(10)} MB/s`);

const loads = [], cold = [], warm = [], dec = [];
let tok, enc;
for (let r = 0; r < runs; r++) {
  const t0 = now();
  tok = Tokenizer.fromFile(file);
  const t1 = now();
  await tok.encode(text, null, { addSpecialTokens: false });
  cold.push(now() - t1);
  loads.push(t1 - t0);
}
for (let r = 0; r < runs; r++) {
  const t0 = now();
  enc = await tok.encode(text, null, { addSpecialTokens: false });
  warm.push(now() - t0);
}
const ids = enc.getIds();
for (let r = 0; r < runs; r++) {
  const t0 = now();
  await tok.decode(ids, false);
  dec.push(now() - t0);
}
console.log(`tokenizers ${version} (node), ${file} (${tok.getVocabSize()} tokens); text ${size} bytes`);
console.log(`${"load tokenizer.json".padEnd(32)} ${(median(loads) * 1e3).toFixed(3).padStart(10)} ms`);
row("encode, cold word cache", median(cold));
row("encode, warm word cache", median(warm));
console.log(`${"tokens".padEnd(32)} ${String(ids.length).padStart(10)}`);
row("decode", median(dec));
