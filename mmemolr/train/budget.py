"""The epoch budget of a run: ``optim.max_epochs`` and ``optim.patience``, counted in optimiser steps when null.

An epoch is ceil(training dialogues / ``optim.batch_dialogues``) Adam steps, and how far training gets
depends on the steps, not on the passes over the data: MELD's 1,038 training dialogues make 65 steps an
epoch, IEMOCAP's 108 make 7. A cap or a patience in epochs that suits one corpus under-trains or
over-waits on another, so a key left null (the default: a corpus without a config file) is counted in steps:

  patience   = max(10, ceil(350 / steps per epoch))            IEMOCAP 50, EmoryNLP 10, MELD 10: each corpus
                                                                config's measured value (docs/training.md)
  max_epochs = max(ceil(10,000 / steps per epoch), 3 × patience)    MELD 154, IEMOCAP 1,429, EmoryNLP 239

The cap is a safety net, 2.8 times the latest peak measured (MELD runs peaked within 1,700-3,600 steps;
a new 11.7k-utterance corpus was still improving at 60 epochs), and at least three patiences, so that a
corpus of long epochs still gives early stopping room; early stopping ends the runs (MELD-shaped corpora
at 56-61 of 154 epochs, IEMOCAP-shaped at 77-145 of 1,429: benchmarks/budget_plateau.py, docs/training.md). :func:`resolve_budget` writes the values into the
config before a run starts, so its run folder records what it trained with.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

from mmemolr.train.config import OptimConfig, TrainConfig

CAP_STEPS = 10_000  # optimiser steps of the cap
CAP_PATIENCES = 3  # the cap is at least this many patiences
PATIENCE_STEPS = 350  # optimiser steps without a better dev W-F1 before training stops
MIN_PATIENCE = 10  # epochs: dev is scored once an epoch, and one epoch's score is noisy


def steps_per_epoch(train_dialogues: int, batch_dialogues: int) -> int:
    return max(1, math.ceil(train_dialogues / batch_dialogues))


def epoch_budget(optim: OptimConfig, train_dialogues: int) -> tuple[int, int]:
    """(max_epochs, patience) of ``optim`` for a training split of ``train_dialogues`` dialogues: the keys'
    values where they are set, the step-counted values where they are null."""
    steps = steps_per_epoch(train_dialogues, optim.batch_dialogues)
    patience = optim.patience if optim.patience is not None else max(MIN_PATIENCE, math.ceil(PATIENCE_STEPS / steps))
    if optim.max_epochs is not None:
        return optim.max_epochs, patience
    return max(math.ceil(CAP_STEPS / steps), CAP_PATIENCES * patience), patience


def resolve_budget(config: TrainConfig, features_dir: str | Path) -> TrainConfig:
    """``config`` with a null ``optim.max_epochs`` / ``optim.patience`` replaced by its step-counted value
    for the training split of the prepared corpus it names (the same config when both are set)."""
    if config.optim.max_epochs is not None and config.optim.patience is not None:
        return config
    from mmemolr.corpus import corpus_dir
    from mmemolr.corpus.prepared import CORPUS_FILE

    path = corpus_dir(config.corpus, features_dir) / CORPUS_FILE
    stat = path.stat() if path.exists() else None
    dialogues = _train_dialogues(config.corpus, str(features_dir), stat.st_mtime_ns if stat else 0,
                                 stat.st_size if stat else 0)
    max_epochs, patience = epoch_budget(config.optim, dialogues)
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, max_epochs=max_epochs,
                                                                 patience=patience))


@functools.lru_cache(maxsize=32)
def _train_dialogues(corpus: str, features_dir: str, mtime_ns: int, size: int) -> int:
    """Training dialogues of a prepared corpus (cached per corpus.json version: a sweep asks once per run)."""
    from mmemolr.corpus import load_prepared

    return len(load_prepared(corpus, features_dir).split_dialogues("train"))


def replay_early_stopping(dev_scores: list[float], max_epochs: int, patience: int) -> tuple[int, int, bool]:
    """(epochs run, selected epoch, ended by early stopping) of run_training's rule with ``max_epochs`` and
    ``patience`` on a recorded dev curve. Training does not depend on either (a seed fixes every draw of
    every epoch), so this is what a run with that budget would have done, as far as the curve reaches."""
    best, best_epoch, bad = -float("inf"), 0, 0
    for epoch, score in enumerate(dev_scores[:max_epochs], 1):
        if score > best:
            best, best_epoch, bad = score, epoch, 0
        else:
            bad += 1
        if bad >= patience:
            return epoch, best_epoch, True
    return min(len(dev_scores), max_epochs), best_epoch, False
