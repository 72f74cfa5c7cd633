"""Text extraction speed: ``mmemolr extract`` runner vs a plain sorted batch loop vs one-at-a-time.

All MELD utterances (train+dev+test from shared/data/meld) through a text encoder (default: the shared
all-MiniLM-L6-v2), last-four-layer mean pooling, on CPU. Three ways, measured in the same process,
interleaved over --repeats rounds (median reported):

  runner  run_extraction(): tokenisation, length-sorted token-budget batches, validation and the HDF5
          write (model load and weight hashing excluded: the model is loaded before timing)
  plain   a bare loop: tokenise everything, sort by length, batches of --batch-size, forward, pool
          (no file written)
  naive   one utterance per forward pass, timed on --naive-subset utterances and extrapolated

Usage:  .venv/bin/python benchmarks/bench_text_extract.py [--repeats 3] [--naive-subset 500] [--threads N]
Targets on a 2-core CPU: runner >= 400 utt/s, >= 4x naive, peak RSS < 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from extractors.text_transformers import TransformersTextConfig, TransformersTextExtractor
from mmemolr.corpus import load_corpus
from mmemolr.extract import run_extraction
from mmemolr.paths import shared_dir
from mmemolr.tables import format_table


def plain_loop(extractor: TransformersTextExtractor, texts: list[str], batch_size: int) -> np.ndarray:
    tok, model = extractor._tokenizer, extractor._model
    ids = tok(texts, add_special_tokens=True)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            enc = tok.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
            hidden = model(**enc, output_hidden_states=True).hidden_states[-4:]
            h = torch.stack(hidden).mean(0)
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            out[rows] = ((h * mask).sum(1) / mask.sum(1)).numpy()
    return out


def naive_loop(extractor: TransformersTextExtractor, texts: list[str]) -> np.ndarray:
    tok, model = extractor._tokenizer, extractor._model
    out = []
    with torch.inference_mode():
        for text in texts:
            enc = tok(text, return_tensors="pt")
            hidden = model(**enc, output_hidden_states=True).hidden_states[-4:]
            out.append(torch.stack(hidden).mean(0)[0].mean(0).numpy())
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(shared_dir() / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--meld", default=str(shared_dir() / "data" / "meld"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-subset", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=TransformersTextConfig.max_tokens)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice, capped to the CPUs)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    corpus = load_corpus("meld", args.meld)
    texts = [u.text for u in corpus.utterances()]
    n = len(texts)
    config = TransformersTextConfig(model=args.model, batch_size=args.batch_size, max_tokens=args.max_tokens)
    extractor = TransformersTextExtractor(config, device="cpu")
    extractor._load()  # model load is not part of any timing
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    subset = [texts[i] for i in rng.choice(n, size=min(args.naive_subset, n), replace=False)]
    naive_loop(extractor, subset[:20])  # warm-up

    times: dict[str, list[float]] = {"runner": [], "plain": [], "naive": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.h5"
        for _ in range(args.repeats):
            result = run_extraction(corpus, extractor, out, overwrite=True, progress=False)
            times["runner"].append(result.seconds)  # opening the file to closing it; no model load
            assert result.complete and not result.errors
            t = time.perf_counter()
            plain_loop(extractor, texts, args.batch_size)
            times["plain"].append(time.perf_counter() - t)
            t = time.perf_counter()
            naive_loop(extractor, subset)
            times["naive"].append((time.perf_counter() - t) * n / len(subset))  # extrapolated to all n

    rate = {k: n / statistics.median(v) for k, v in times.items()}
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ["runner (mmemolr extract, HDF5 write)", n, statistics.median(times["runner"]), rate["runner"],
         rate["runner"] / rate["naive"]],
        [f"plain sorted loop (batch {args.batch_size}, no file)", n, statistics.median(times["plain"]),
         rate["plain"], rate["plain"] / rate["naive"]],
        [f"naive one at a time ({len(subset)} timed, extrapolated)", n, statistics.median(times["naive"]),
         rate["naive"], 1.0],
    ]
    print(format_table(["method", "utterances", "median s", "utt/s", "x naive"], rows,
                       title=f"MELD text extraction, {Path(args.model).name}, {torch.get_num_threads()} threads, "
                       f"median of {args.repeats}"))
    print(f"\nrunner / plain loop: {rate['runner'] / rate['plain']:.2f}x   "
          f"runner / naive: {rate['runner'] / rate['naive']:.2f}x   peak RSS (ru_maxrss): {peak_mib:,.0f} MiB")
    print("runs (s): " + "; ".join(f"{k} " + ", ".join(f"{x:.1f}" for x in v) for k, v in times.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"n": n, "times": times, "rate": rate, "peak_rss_mib": peak_mib},
                                              indent=2))


if __name__ == "__main__":
    main()
