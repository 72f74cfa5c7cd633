"""What the per-epoch refinement diagnostics (metrics.csv valid_refine_*) cost: the dev evaluation of an
RLD run with its target distributions and their diagnostics (with the shipped 100 permutations for the
chance level of class specificity, and with the final evaluation's 500), against the plain dev evaluation
and one training epoch; same process, same model, interleaved repeats, medians.

  .venv/bin/python benchmarks/bench_epoch_diagnostics.py [--corpus meld] [--repeats 5] [--threads 1]

Needs a prepared corpus with a text feature file (scripts/quickstart.sh makes features/meld).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from mmemolr.config import load_config
from mmemolr.targets.diagnostics import (
    EPOCH_PERMUTATIONS,
    PERMUTATIONS,
    epoch_diagnostics,
    refinement_diagnostics,
)
from mmemolr.train.build import build_model
from mmemolr.train.config import TrainConfig, default_config_path
from mmemolr.train.data import load_training_data
from mmemolr.train.device import set_threads
from mmemolr.train.loop import EVAL_BATCH_DIALOGUES, evaluate, train_epoch
from mmemolr.train.run import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="meld")
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    config = load_config(TrainConfig, default_config_path(args.corpus),
                         [f"corpus={args.corpus}", "target.name=rld", "modalities=[t]", "device=cpu"])
    torch.manual_seed(0)
    data = load_training_data(config.corpus, list(config.modalities), dict(config.features),
                              Path(args.features_dir)).data
    model = build_model(config, data.input_dim, len(data.labels))
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    device = torch.device("cpu")
    dev, batch = data.split("dev"), EVAL_BATCH_DIALOGUES
    t0 = time.perf_counter()
    train_epoch(model, data, data.split("train"), optimizer, config.optim, generator, device)
    epoch = time.perf_counter() - t0
    plain, shipped, full = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        evaluate(model, data, dev, batch, device)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ev = evaluate(model, data, dev, batch, device, refined=True)
        epoch_diagnostics(ev.refined, ev.gold, data.labels)
        shipped.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ev = evaluate(model, data, dev, batch, device, refined=True)
        refinement_diagnostics(ev.refined, ev.gold, data.labels, permutations=PERMUTATIONS)
        full.append(time.perf_counter() - t0)
    a = statistics.median(plain)
    print(f"{args.corpus}, {len(ev.gold)} dev utterances, {args.threads} thread(s), median of {args.repeats}; "
          f"one training epoch {epoch:.3f} s")
    print(f"  dev evaluation                                  {a:.3f} s")
    for name, times in ((f"+ z and diagnostics, {EPOCH_PERMUTATIONS} permutations (shipped)", shipped),
                        (f"+ z and diagnostics, {PERMUTATIONS} permutations", full)):
        b = statistics.median(times)
        print(f"  {name:47s} {b:.3f} s  (+{b - a:.3f} s, {100 * (b - a) / (epoch + a):.1f}% of an epoch)")

if __name__ == "__main__":
    main()
