"""The epoch budget (mmemolr.train.budget): without a corpus config the cap and the patience count optimiser
steps, so a corpus of few dialogues (few steps an epoch) reaches its plateau and stops by early stopping.

What makes IEMOCAP under-train at MELD's cap is its optimiser steps per epoch: 108 training dialogues are 7
batches of 16. The slow test's corpus has exactly that, with dialogues of 2-4 utterances so that a step is
cheap, and a class signal that takes the predictor about 500 steps (70-odd epochs) to learn: more than the
60 epochs (420 steps) that were the default and configs/iemocap.yaml's cap before. ``benchmarks/
budget_plateau.py`` runs the same check on full-length MELD- and IEMOCAP-shaped corpora.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import yaml
from train_helpers import make_corpus, prepare

from mmemolr.config import load_config
from mmemolr.corpus.synthetic import IEMOCAP_SHAPE, MELD_SHAPE, CorpusShape, prepare_shaped
from mmemolr.paths import REPO_ROOT
from mmemolr.train.budget import epoch_budget, replay_early_stopping, resolve_budget
from mmemolr.train.config import OptimConfig, TrainConfig
from mmemolr.train.run import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OLD_DEFAULT = (60, 10)  # TrainConfig's max_epochs, patience before issue 25 (and configs/iemocap.yaml's before 17)
EMORYNLP_TRAIN = 659


@pytest.mark.parametrize("corpus, train_dialogues", [("meld", MELD_SHAPE.splits["train"]),
                                                      ("emorynlp", EMORYNLP_TRAIN),
                                                      ("iemocap", IEMOCAP_SHAPE.splits["train"])])
def test_the_step_rule_gives_each_corpus_config_its_patience_and_room_beyond_its_cap(corpus, train_dialogues):
    shipped = load_config(TrainConfig, REPO_ROOT / "configs" / f"{corpus}.yaml").optim
    max_epochs, patience = epoch_budget(dataclasses.replace(shipped, max_epochs=None, patience=None), train_dialogues)
    assert patience == shipped.patience
    assert max_epochs > shipped.max_epochs and max_epochs >= 3 * patience


def test_the_budget_counts_steps_and_keeps_what_is_set():
    default = OptimConfig()
    assert (default.max_epochs, default.patience) == (None, None)
    assert epoch_budget(default, 1038) == (154, 10)  # MELD: 65 steps an epoch
    assert epoch_budget(default, 108) == (1429, 50)  # IEMOCAP: 7
    assert epoch_budget(default, 10_000) == (30, 10)  # 625 steps an epoch: three patiences, 18,750 steps
    assert epoch_budget(default, 3) == (10_000, 350)  # one step an epoch
    assert epoch_budget(dataclasses.replace(default, batch_dialogues=64), 1038) == (589, 21)
    assert epoch_budget(dataclasses.replace(default, max_epochs=60), 108) == (60, 50)
    assert epoch_budget(dataclasses.replace(default, patience=5), 108) == (1429, 5)
    assert epoch_budget(dataclasses.replace(default, patience=500), 1038) == (1500, 500)


def test_a_run_records_the_budget_it_trained_with(tmp_path):
    features = prepare(tmp_path / "features", make_corpus(sizes={"train": 20, "dev": 4, "test": 4}, max_len=4))
    config = load_config(TrainConfig, None, ["corpus=synth", "device=cpu", "model.hidden=6", "model.label_dim=4",
                                             "optim.lr=0.01", "optim.patience=2"])
    assert resolve_budget(config, features).optim.max_epochs == 10_000 // 2  # 2 steps an epoch
    results = run_training(config, tmp_path / "run", features, progress=False)
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["optim"]
    assert (stored["max_epochs"], stored["patience"]) == (5000, 2)
    assert results["config"]["optim"]["max_epochs"] == 5000 and results["epochs_run"] < 5000
    # The same command again finds the same budget: the finished run is returned as stored.
    assert run_training(config, tmp_path / "run", features, progress=False) == results


def test_replaying_early_stopping_on_a_dev_curve():
    curve = [0.1, 0.3, 0.2, 0.2, 0.4, 0.4, 0.4]
    assert replay_early_stopping(curve, 10, 2) == (4, 2, True)
    assert replay_early_stopping(curve, 10, 3) == (7, 5, False)  # the curve ends before patience does
    assert replay_early_stopping(curve, 3, 5) == (3, 2, False)  # the cap


@pytest.mark.slow
def test_a_corpus_without_a_config_trains_to_its_plateau_before_the_cap(tmp_path):
    shape = CorpusShape(splits={"train": IEMOCAP_SHAPE.splits["train"], "dev": 100, "test": 4}, length=(2, 4),
                        speakers=IEMOCAP_SHAPE.speakers, labels=IEMOCAP_SHAPE.labels)
    prepare_shaped(tmp_path, shape, name="iemocap-steps", dim=16, signal=2.6, persistence=0.0)
    config = load_config(TrainConfig, None, ["corpus=iemocap-steps", "target.name=onehot"])  # no corpus config
    results = run_training(config, tmp_path / "run", tmp_path, progress=False, threads=1)
    budget = results["config"]["optim"]
    assert math.ceil(shape.splits["train"] / budget["batch_dialogues"]) == 7  # IEMOCAP's steps per epoch
    assert (budget["max_epochs"], budget["patience"]) == (1429, 50)
    dev = [row["valid_weighted_f1"] for row in json.loads((tmp_path / "run" / "metrics.json").read_text())]
    # early stopping ended the run (patience epochs after its best), far from the cap
    assert results["epochs_run"] == results["best_epoch"] + budget["patience"] < budget["max_epochs"] / 4
    # the plateau lay beyond the old default cap: a 60-epoch run stopped there, short of it
    assert results["best_epoch"] > OLD_DEFAULT[0] and max(dev[:OLD_DEFAULT[0]]) < dev[results["best_epoch"] - 1]
    assert replay_early_stopping(dev, *OLD_DEFAULT) == (OLD_DEFAULT[0], replay_early_stopping(dev, *OLD_DEFAULT)[1],
                                                        False)
    # configs/iemocap.yaml trains the same model with the same optimiser; its budget (500 epochs, patience 50)
    # ends the same curve the same way.
    iemocap = load_config(TrainConfig, REPO_ROOT / "configs" / "iemocap.yaml",
                          ["corpus=iemocap-steps", "target.name=onehot"])
    assert dataclasses.replace(iemocap.optim, max_epochs=None, patience=None) == config.optim
    assert dataclasses.replace(iemocap.model, backbone_options={}) == config.model
    assert iemocap.target == config.target
    assert replay_early_stopping(dev, iemocap.optim.max_epochs, iemocap.optim.patience) == (
        results["epochs_run"], results["best_epoch"], True)
