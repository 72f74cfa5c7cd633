"""Keep the turns without a usable label as context, or drop them? Measured on the synthetic annotated corpus.

IEMOCAP's usual 6-class protocol drops the turns labelled outside the six classes (xxx, oth, sur, fea, dis);
``mmemolr corpus prepare --corpus iemocap --context-turns`` keeps them in their dialogue as context-only
utterances instead (read by the model, never scored). This builds the corpus of
mmemolr.corpus.synthetic.make_annotated (emotions persist in a dialogue, so neighbours carry information),
hides the labels of a share of its utterances at random (``--hidden``, on top of the no-majority rows; about
a third of IEMOCAP's turns fall outside the six classes), and writes it twice: once with those utterances
dropped from their dialogues, once with them kept as context. Both hold the same labelled utterances with
the same vectors, so the test scores compare like with like; each target trains on both for every seed.

  .venv/bin/python benchmarks/context_turns.py --seeds 5 [--hidden 0.3] [--signal 3] [--targets rld,onehot]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mmemolr.compare.stats import paired_test
from mmemolr.config import load_config
from mmemolr.corpus.model import Corpus, Dialogue
from mmemolr.corpus.synthetic import make_annotated, write_prepared
from mmemolr.tables import format_table
from mmemolr.train.config import TrainConfig
from mmemolr.train.run import run_training

SMALL = ["device=cpu", "model.hidden=32", "model.label_dim=16", "optim.lr=0.003", "optim.max_epochs=40",
         "optim.patience=10", "optim.batch_dialogues=8"]


def variants(hidden: float, signal: float, seed: int = 0) -> dict[str, tuple[Corpus, np.ndarray]]:
    """The corpus with a share ``hidden`` of its labels hidden: dropped, and kept as context."""
    corpus, vectors = make_annotated(seed=seed, signal=signal)
    rng = np.random.default_rng(seed + 1)
    rows = list(corpus.utterances())
    for u in rows:
        if u.label is not None and rng.random() < hidden:
            u.label, u.extra["context_reason"] = None, "hidden"
    kept = Corpus(corpus.name, corpus.labels, corpus.dialogues, dict(corpus.provenance), dict(corpus.report))
    vector = {u.id: v for u, v in zip(rows, vectors)}
    dialogues = []
    for d in corpus.dialogues:
        utts = [u for u in d.utterances if u.label is not None]
        if not utts:
            continue
        copies = [type(u)(**{**u.to_dict(), "index": i}) for i, u in enumerate(utts)]
        dialogues.append(Dialogue(d.id, d.split, copies))
    dropped = Corpus(corpus.name, corpus.labels, dialogues, dict(corpus.provenance), {})
    for c in (kept, dropped):
        c.validate()
    return {name: (c, np.stack([vector[u.id] for u in c.utterances()]))
            for name, c in (("dropped", dropped), ("kept as context", kept))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--hidden", type=float, default=0.3)
    parser.add_argument("--targets", default="rld,onehot")
    parser.add_argument("--signal", type=float, default=3.0,
                        help="class signal of the utterance vectors (lower: the dialogue context matters more)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="context-turns-"))
    try:
        scores: dict[tuple[str, str], dict[int, float]] = {}
        for name, (corpus, vectors) in variants(args.hidden, args.signal).items():
            folder = root / name.replace(" ", "-")
            write_prepared(folder / corpus.name, corpus, vectors, "synthetic-annotated", {"hidden": args.hidden})
            labelled = sum(u.label is not None for u in corpus.utterances("test"))
            print(f"{name}: {sum(len(d) for d in corpus.dialogues)} utterances, {labelled} labelled test utterances")
            for target in args.targets.split(","):
                for seed in range(args.seeds):
                    config = load_config(TrainConfig, None, [f"corpus={corpus.name}", f"target.name={target}",
                                                             f"seed={seed}", *SMALL])
                    results = run_training(config, folder / f"{target}-{seed}", folder, progress=False, threads=1)
                    scores.setdefault((target, name), {})[seed] = results["test"]["weighted_f1"]
        rows = []
        for target in args.targets.split(","):
            kept, dropped = scores[(target, "kept as context")], scores[(target, "dropped")]
            test = paired_test(kept, dropped)
            rows.append([target, f"{100 * np.mean(list(dropped.values())):.2f} ± {100 * np.std(list(dropped.values()), ddof=1):.2f}",
                         f"{100 * np.mean(list(kept.values())):.2f} ± {100 * np.std(list(kept.values()), ddof=1):.2f}",
                         f"{100 * test['diff_mean']:+.2f} ± {100 * test['diff_std']:.2f}", f"{test['p']:.3f}"])
        print(format_table(["target", "dropped: test W-F1", "kept as context: test W-F1", "Δ (kept − dropped)",
                            "p (paired t)"], rows))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
