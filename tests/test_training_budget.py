"""configs/iemocap.yaml leaves an IEMOCAP-shaped corpus room to reach its plateau before the epoch cap.

What makes IEMOCAP under-train at MELD's cap is its optimiser steps per epoch: 108 training dialogues are 7
batches of 16. The corpus here has exactly that, with dialogues of 2-4 utterances so that a step is cheap,
and a class signal that takes the predictor about 500 steps (70-odd epochs) to learn: more than the 60
epochs (420 steps) that configs/iemocap.yaml had. ``benchmarks/iemocap_plateau.py`` runs the same check on
full-length dialogues.
"""

from __future__ import annotations

import json
import math

import pytest

from mmemolr.config import load_config
from mmemolr.corpus.synthetic import IEMOCAP_SHAPE, CorpusShape, prepare_shaped
from mmemolr.paths import REPO_ROOT
from mmemolr.train.config import TrainConfig
from mmemolr.train.run import run_training

OLD_MAX_EPOCHS = 60  # configs/iemocap.yaml before issue 17


@pytest.mark.slow
def test_iemocap_config_trains_to_the_plateau_before_the_cap(tmp_path):
    shape = CorpusShape(splits={"train": IEMOCAP_SHAPE.splits["train"], "dev": 100, "test": 4}, length=(2, 4),
                        speakers=IEMOCAP_SHAPE.speakers, labels=IEMOCAP_SHAPE.labels)
    prepare_shaped(tmp_path, shape, name="iemocap-steps", dim=16, signal=2.6, persistence=0.0)
    config = load_config(TrainConfig, REPO_ROOT / "configs" / "iemocap.yaml",
                         ["corpus=iemocap-steps", "target.name=onehot"])
    assert math.ceil(shape.splits["train"] / config.optim.batch_dialogues) == 7  # IEMOCAP's steps per epoch
    results = run_training(config, tmp_path / "run", tmp_path, progress=False, threads=1)
    dev = [row["valid_weighted_f1"] for row in json.loads((tmp_path / "run" / "metrics.json").read_text())]
    # early stopping ended the run (patience epochs after its best), far from the cap
    assert results["epochs_run"] == results["best_epoch"] + config.optim.patience
    assert results["epochs_run"] < config.optim.max_epochs / 2
    # and the plateau lay beyond the old cap: a 60-epoch run would have stopped short of it
    assert results["best_epoch"] > OLD_MAX_EPOCHS and max(dev[:OLD_MAX_EPOCHS]) < dev[results["best_epoch"] - 1]
