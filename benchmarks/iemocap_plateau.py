"""Does configs/iemocap.yaml train an IEMOCAP-shaped corpus to its plateau before the epoch cap?

IEMOCAP has few, long dialogues: 108 training dialogues make 7 optimiser steps an epoch at 16 dialogues
a batch (MELD: 65), so an epoch cap that suits MELD leaves IEMOCAP under-trained. This trains the
shipped config on a synthetic corpus of IEMOCAP's shape (``mmemolr.corpus.synthetic.IEMOCAP_SHAPE``: 108
training, 12 dev and 31 test dialogues of 30-70 utterances, two speakers, six classes; 100-d vectors, the
size of DialogueRNN's IEMOCAP text features, with a weak class signal; each speaker keeps their previous
label with probability 0.8, so context pays).

Training with a seed does not depend on ``optim.max_epochs`` or ``optim.patience``, so the first epochs
of each run are exactly a run with the previous settings (60 epochs, patience 10): the script replays
that rule on the recorded dev curve and prints both.

  .venv/bin/python benchmarks/iemocap_plateau.py [--seeds 1] [--target onehot] [--signal 0.1] [--dim 100] \
      [--out runs/iemocap_plateau] [--set optim.max_epochs=60 --set optim.patience=10]

Per seed: epochs run, best epoch, dev weighted F1 at the selected epoch, what the old rule would have
selected, test weighted F1 and seconds per epoch. One run takes about 6 minutes on one CPU core (the
``--set`` run with the old settings, whose test figure the replay cannot give, 2).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmemolr.config import load_config
from mmemolr.corpus.synthetic import IEMOCAP_SHAPE, prepare_shaped
from mmemolr.paths import REPO_ROOT
from mmemolr.tables import format_table
from mmemolr.train.config import TrainConfig
from mmemolr.train.run import run_training

OLD_RULE = (60, 10)  # configs/iemocap.yaml until issue 17: max_epochs, patience


def replay_early_stopping(dev_scores: list[float], max_epochs: int, patience: int) -> tuple[int, int]:
    """(epochs run, selected epoch) of run_training's rule applied to a recorded dev curve."""
    best, best_epoch, bad = -float("inf"), 0, 0
    for epoch, score in enumerate(dev_scores[:max_epochs], 1):
        if score > best:
            best, best_epoch, bad = score, epoch, 0
        else:
            bad += 1
        if bad >= patience:
            return epoch, best_epoch
    return min(len(dev_scores), max_epochs), best_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--target", default="onehot")
    parser.add_argument("--signal", type=float, default=0.1, help="class signal of the synthetic vectors")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--out", default="runs/iemocap_plateau")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    out = Path(args.out)
    features = out / "features"
    name = f"iemocap-shaped-s{args.signal:g}-d{args.dim}"
    if not (features / name / "corpus.json").exists():
        prepare_shaped(features, IEMOCAP_SHAPE, name=name, dim=args.dim, signal=args.signal)
    rows = []
    for seed in range(args.seeds):
        config = load_config(TrainConfig, REPO_ROOT / "configs" / "iemocap.yaml",
                             [f"corpus={name}", f"seed={seed}", f"target.name={args.target}", *args.set])
        run_dir = out / name / "-".join([f"{args.target}-seed{seed}", *args.set]).replace("/", "_")
        started = time.perf_counter()
        results = run_training(config, run_dir, features, progress=True, threads=args.threads)
        history = json.loads((run_dir / "metrics.json").read_text())
        dev = [row["valid_weighted_f1"] for row in history]
        old_run, old_best = replay_early_stopping(dev, *OLD_RULE)
        rows.append([seed, f"{results['epochs_run']} of {config.optim.max_epochs}", results["best_epoch"],
                     100 * dev[results["best_epoch"] - 1], f"{old_best} (ran {old_run})", 100 * dev[old_best - 1],
                     100 * results["test"]["weighted_f1"], results["seconds_per_epoch"],
                     (time.perf_counter() - started) / 60])
    print(format_table(
        ["seed", "epochs run", "best epoch", "dev W-F1 %", "old rule: best epoch", "old rule: dev W-F1 %",
         "test W-F1 %", "s/epoch", "min"], rows,
        title=f"{name}, configs/iemocap.yaml {' '.join(args.set)}, target {args.target}"))


if __name__ == "__main__":
    main()
