"""How varied is a run's refined label distribution? Statistics of z on the dev split.

For each run folder of an ``rld`` (or ``lcm``) run: z is recomputed from best.pt on the dev utterances,
then printed: the median mass on the gold label; the median mass on the strongest other label; which
other label that is most often and for what share of the utterances ("mode share": 100% means the
same label for every utterance, the collapse described in docs/training.md); and how spread the
non-gold mass is (mean normalised entropy: 0 = all on one label, 1 = even over the C-1 others).

  .venv/bin/python benchmarks/rld_shape.py runs/dev_search4/meld/id7lr2wd1e-3/rld-seed*
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from mmemolr.tables import format_table
from mmemolr.train.inference import load_run, load_run_data
from mmemolr.train.loop import evaluate


def refined_on_dev(run_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    run = load_run(run_dir)
    prepared = load_run_data(run)
    result = evaluate(run.model, prepared.data, prepared.data.split("dev"), run.config.optim.eval_batch_dialogues,
                      run.device, refined=True)
    if result.refined is None:
        raise SystemExit(f"{run_dir}: target {run.config.target.name!r} has no refined distribution")
    return result.refined, result.gold, run.labels


def shape(z: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict:
    n, c = z.shape
    gold_mass = z[np.arange(n), gold]
    other = z.copy()
    other[np.arange(n), gold] = 0.0
    top = other.argmax(1)
    mode, count = collections.Counter(top.tolist()).most_common(1)[0]
    part = other / other.sum(1, keepdims=True).clip(1e-12)
    entropy = -(part * np.log(part.clip(1e-12))).sum(1) / np.log(c - 1)
    return {"gold": float(np.median(gold_mass)), "top_other": float(np.median(other.max(1))),
            "mode": labels[mode], "mode_share": count / n,
            "entropy": float(entropy.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    rows = []
    for run_dir in args.runs:
        s = shape(*refined_on_dev(run_dir))
        rows.append([str(run_dir), f"{s['gold']:.3f}", f"{s['top_other']:.3f}", s["mode"],
                     f"{100 * s['mode_share']:.1f}%", f"{s['entropy']:.2f}"])
    print(format_table(["run", "z[gold]", "z[top other]", "top other label", "mode share", "non-gold entropy"],
                       rows, title="refined distribution z on the dev split (medians over utterances)"))


if __name__ == "__main__":
    main()
