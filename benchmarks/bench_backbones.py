"""Each backbone on MELD text: seconds per training epoch, and dev weighted F1 against the context-free
logistic-regression floor on the same features.

Speed: the real corpus from a features dir (benchmarks/bench_train.py's loader: real 384-d MiniLM
features when present, random ones otherwise; speed does not depend on the values), configs/<corpus>.yaml
with ``model.backbone=<name>`` (published sizes), 16 dialogues a batch, target rld; one warm-up epoch,
then the median of ``--epochs`` timed epochs.

Floor (``--train-epochs N``): one ``mmemolr train`` run per backbone (seed 0, one-hot target unless
``--target``, at most N epochs), best dev weighted F1 beside the logistic regression's
(benchmarks/real_check_train.py: z-normalised utterance vector -> label, C chosen on dev).

  .venv/bin/python benchmarks/bench_backbones.py --features-dir features [--threads 1] [--epochs 3] \
      [--backbones emolr,dialoguernn,dialoguegcn,dag-erc] [--train-epochs 10 --runs /tmp/bb-runs]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

from mmemolr.config import load_config
from mmemolr.tables import format_table
from mmemolr.train.build import build_model
from mmemolr.train.config import TrainConfig, default_config_path
from mmemolr.train.device import set_threads
from mmemolr.train.loop import train_epoch
from mmemolr.train.run import make_optimizer, run_training

HERE = Path(__file__).resolve().parent


def _sibling(name: str):
    """A module of this folder (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def speed(corpus: str, backbone: str, args: argparse.Namespace, data) -> tuple[float, int]:
    config = load_config(TrainConfig, default_config_path(corpus), [
        f"corpus={corpus}", f"model.backbone={backbone}", "target.name=rld", "optim.batch_dialogues=16", *args.set])
    torch.manual_seed(0)
    model = build_model(config, data.input_dim, len(data.labels))
    optimizer = make_optimizer(model, config)
    gen = torch.Generator().manual_seed(0)
    train = data.split("train")
    times = []
    for _ in range(args.epochs + 1):
        t0 = time.perf_counter()
        train_epoch(model, data, train, optimizer, config.optim, gen, torch.device("cpu"))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), sum(p.numel() for p in model.predictor.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="meld")
    parser.add_argument("--backbones", default="emolr,dialoguernn,dialoguegcn,dag-erc")
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per backbone (after one warm-up)")
    parser.add_argument("--train-epochs", type=int, default=0, help="also train each backbone this many epochs "
                        "at most and compare dev W-F1 with the logistic-regression floor (0: speed only)")
    parser.add_argument("--target", default="onehot", help="target of the floor-comparison runs")
    parser.add_argument("--runs", default="runs/bench-backbones", help="run folders of the floor comparison")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra config overrides")
    args = parser.parse_args()
    set_threads(args.threads)
    names = [b.strip() for b in args.backbones.split(",") if b.strip()]

    data, source = _sibling("bench_train").load_data(args.corpus, Path(args.features_dir))
    rows = []
    for name in names:
        seconds, params = speed(args.corpus, name, args, data)
        rows.append([name, f"{params / 1e6:.2f}M", f"{seconds:.2f}"])
        print(f"{name}: {seconds:.2f} s/epoch", flush=True)
    print(f"\n{args.corpus}, {source}, {args.threads} thread(s), 16 dialogues a batch, target rld, "
          f"median of {args.epochs} epochs")
    print(format_table(["backbone", "parameters", "s/epoch"], rows))

    if args.train_epochs:
        floor = _sibling("real_check_train").logistic_baseline(args.corpus, args.features_dir)
        rows = [["logistic regression (context-free)", "-", f"{floor['valid_weighted_f1'] * 100:.2f}",
                 f"{floor['test']['weighted_f1'] * 100:.2f}"]]
        for name in names:
            config = load_config(TrainConfig, default_config_path(args.corpus), [
                f"corpus={args.corpus}", f"model.backbone={name}", f"target.name={args.target}", "seed=0",
                f"optim.max_epochs={args.train_epochs}", *args.set])
            results = run_training(config, Path(args.runs) / name, Path(args.features_dir), progress=False,
                                   threads=args.threads)
            rows.append([name, results["best_epoch"], f"{results['valid']['weighted_f1'] * 100:.2f}",
                         f"{results['test']['weighted_f1'] * 100:.2f}"])
            print(f"{name}: dev W-F1 {results['valid']['weighted_f1'] * 100:.2f}", flush=True)
        print(f"\n{args.corpus} text, seed 0, target {args.target}, at most {args.train_epochs} epochs; "
              f"floor C={floor['C']:g}")
        print(format_table(["model", "best epoch", "dev W-F1", "test W-F1"], rows))


if __name__ == "__main__":
    main()
