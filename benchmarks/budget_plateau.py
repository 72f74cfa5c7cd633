"""Does the epoch budget let a corpus of a real corpus's shape reach its plateau and stop by early stopping?

Trains on a synthetic corpus of MELD's or IEMOCAP's shape (``mmemolr.corpus.synthetic.MELD_SHAPE``: 1,038 /
114 / 280 dialogues of 1-19 utterances, 65 optimiser steps an epoch; ``IEMOCAP_SHAPE``: 108 / 12 / 31
dialogues of 30-70 utterances, 7 steps an epoch), 100-d vectors with a weak class signal, labels that
persist within a speaker's turns (so context pays). By default with no corpus config: the code's defaults,
whose null ``optim.max_epochs`` / ``optim.patience`` are counted in optimiser steps (mmemolr.train.budget);
``--config configs/iemocap.yaml`` or ``--set optim.max_epochs=60`` to try others.

Training with a seed does not depend on the budget, so the first epochs of each run are exactly a run with
another budget: the script replays the old default (60 epochs, patience 10) on the recorded dev curve and
prints both, with what ended each run (early stopping or the cap).

  .venv/bin/python benchmarks/budget_plateau.py --shape meld --seeds 3
  .venv/bin/python benchmarks/budget_plateau.py --shape iemocap --seeds 3 [--config configs/iemocap.yaml]
      [--target onehot] [--signal 0.1] [--dim 100] [--out runs/budget_plateau] [--set KEY=VALUE ...]

One MELD-shaped run takes 1-3 minutes on one CPU core, an IEMOCAP-shaped one 3-6.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmemolr.config import load_config
from mmemolr.corpus.synthetic import IEMOCAP_SHAPE, MELD_SHAPE, prepare_shaped
from mmemolr.tables import format_table
from mmemolr.train.budget import replay_early_stopping, steps_per_epoch
from mmemolr.train.config import TrainConfig
from mmemolr.train.run import run_training

SHAPES = {"meld": MELD_SHAPE, "iemocap": IEMOCAP_SHAPE}
OLD_DEFAULT = (60, 10)  # TrainConfig's max_epochs, patience until issue 25


def _ended(by_patience: bool) -> str:
    return "early stopping" if by_patience else "CAP"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="iemocap")
    parser.add_argument("--config", default=None, help="a corpus config (default: none, the code's defaults)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--target", default="onehot")
    parser.add_argument("--signal", type=float, default=0.1, help="class signal of the synthetic vectors")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--out", default="runs/budget_plateau")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    shape = SHAPES[args.shape]
    out = Path(args.out)
    features = out / "features"
    name = f"{args.shape}-shaped-s{args.signal:g}-d{args.dim}"
    if not (features / name / "corpus.json").exists():
        prepare_shaped(features, shape, name=name, dim=args.dim, signal=args.signal)
    label = Path(args.config).stem if args.config else "no-config"
    rows = []
    for seed in range(args.seeds):
        config = load_config(TrainConfig, args.config,
                             [f"corpus={name}", f"seed={seed}", f"target.name={args.target}", *args.set])
        run_dir = out / name / "-".join([label, f"{args.target}-seed{seed}", *args.set]).replace("/", "_")
        started = time.perf_counter()
        results = run_training(config, run_dir, features, progress=True, threads=args.threads)
        budget = results["config"]["optim"]
        dev = [row["valid_weighted_f1"] for row in json.loads((run_dir / "metrics.json").read_text())]
        stopped = results["epochs_run"] < budget["max_epochs"] or (
            results["epochs_run"] - results["best_epoch"] >= budget["patience"])
        old_run, old_best, old_stopped = replay_early_stopping(dev, *OLD_DEFAULT)
        rows.append([seed, f"{results['epochs_run']} of {budget['max_epochs']}", budget["patience"],
                     results["best_epoch"], _ended(stopped), 100 * dev[results["best_epoch"] - 1],
                     f"{old_run} (best {old_best})", _ended(old_stopped), 100 * dev[old_best - 1],
                     100 * results["test"]["weighted_f1"], results["seconds_per_epoch"],
                     (time.perf_counter() - started) / 60])
    steps = steps_per_epoch(shape.splits["train"], config.optim.batch_dialogues)
    print(format_table(
        ["seed", "epochs run", "patience", "best epoch", "ended by", "dev W-F1 %", "60/10: epochs", "60/10: ended by",
         "60/10: dev W-F1 %", "test W-F1 %", "s/epoch", "min"], rows,
        title=f"{name} ({steps} steps an epoch), {label} {' '.join(args.set)}, target {args.target}"))


if __name__ == "__main__":
    main()
