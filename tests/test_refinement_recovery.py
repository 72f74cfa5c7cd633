"""On a synthetic corpus whose true label confusions are known, the shipped refined target recovers them
and the diagnostics flag the first (bounded, eq. 13) form as not refining. mmemolr.corpus.synthetic
documents the corpus; docs/training.md (Targets) the measured figures over seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmemolr.config import load_config
from mmemolr.corpus import load_prepared
from mmemolr.corpus.synthetic import recovery, write_synthetic
from mmemolr.paths import REPO_ROOT
from mmemolr.train.config import TrainConfig
from mmemolr.train.inference import refined_on_split
from mmemolr.train.run import run_training

SMALL = ["device=cpu", "model.hidden=32", "model.label_dim=16", "optim.lr=0.003", "optim.max_epochs=20",
         "optim.patience=20", "optim.batch_dialogues=8"]


def shipped_forms() -> list[tuple[str, str]]:
    """The (refiner, combine) pairs the shipped corpus configs train rld with."""
    forms = set()
    for path in sorted((REPO_ROOT / "configs").glob("*.yaml")):
        target = load_config(TrainConfig, path).target
        forms.add((target.refiner, target.combine))
    return sorted(forms)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root / "synthetic-mixed")
    return root


def _train(features: Path, refiner: str, combine: str, out: Path) -> tuple[dict, dict]:
    config = load_config(TrainConfig, None, ["corpus=synthetic-mixed", "target.name=rld", f"target.refiner={refiner}",
                                             f"target.combine={combine}", *SMALL])
    results = run_training(config, out, features, progress=False, threads=1)
    z, _, ids = refined_on_split(out, "test")
    return results, recovery(z, ids, load_prepared(features / "synthetic-mixed"))


@pytest.mark.parametrize("refiner,combine", shipped_forms())
def test_the_shipped_refined_target_recovers_the_designed_confusions(synthetic, tmp_path, refiner, combine):
    results, scores = _train(synthetic, refiner, combine, tmp_path / "run")
    assert results["refinement"]["test"]["verdict"] == "refines", results["refinement"]["test"]
    # most of each class's non-gold mass goes to its designed partner (uniform would give 1/5) ...
    assert scores["min_share"] >= 0.5, scores
    # ... and more of it for the utterances that truly are more mixed
    assert scores["rho"] > 0.25, scores


def test_the_first_bounded_form_is_flagged(synthetic, tmp_path):
    results, scores = _train(synthetic, "bounded", "eta", tmp_path / "run")
    assert results["refinement"]["test"]["verdict"] != "refines", results["refinement"]["test"]
    assert max(scores["partner_share"].values()) < 0.5, scores
