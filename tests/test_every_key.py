"""Every key of the training config, at values other than its default, trains through both code paths:
one run alone (``run_training``) and a group of two seeds as one batched model (``train_group``).

Issue 25 found a key that worked alone and crashed a group (``target.gradient=detach``: an unused
parameter in ``torch.autograd.grad``). The cases below are checked to give every key of ``TrainConfig``
and every backbone option a value other than its default somewhere (``test_the_cases_cover_every_key``),
so a key added without a case fails here. Tiny corpus, one epoch: seconds per case.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from train_helpers import make_corpus, prepare

from mmemolr.config import load_config, to_dict
from mmemolr.model.backbones import BACKBONES, backbone_options, load_builtin_backbones
from mmemolr.train.batched import train_group
from mmemolr.train.config import TrainConfig
from mmemolr.train.run import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = ["corpus=synth", "device=cpu", "model.hidden=6", "model.label_dim=4", "optim.lr=0.01",
        "optim.batch_dialogues=4", "optim.max_epochs=1", "optim.patience=1"]
RNN = "model.backbone_options.dialoguernn={global_size: 5, emotion_size: 4, classifier_hidden: 3, dropout: 0.2, " \
      "input_dropout: 0.3}"
GCN = "model.backbone_options.dialoguegcn={encoder_hidden: 3, encoder_layers: 1, window_past: 2, window_future: 1, " \
      "n_speakers: 2, n_bases: 3, classifier_hidden: 4, dropout: 0.2}"
DAG = "model.backbone_options.dag-erc={hidden: 5, layers: 1, window_same_speaker: 2, dropout: 0.3, input_dropout: 0.3}"
CASES = {
    "defaults": [],
    "modalities": ["modalities=[t,a]"],
    "audio-only": ["modalities=[a]"],
    "features": ["features.t={text_file}"],
    "seed": ["seed=3"],
    "dropouts": ["model.dropout=0.2", "model.input_dropout=0"],
    "emotion-speaker": ["model.emotion_speaker=updated"],
    "onehot": ["target.name=onehot"],
    "ls": ["target.name=ls", "target.smoothing=0.2"],
    "lcm": ["target.name=lcm"],
    "votes": ["target.name=votes"],
    "rld-paper": ["target.refiner=paper", "target.combine=eta", "target.eta=2"],
    "rld-bounded-eta": ["target.refiner=bounded", "target.combine=eta", "target.eta=0"],
    "rld-bounded-mix": ["target.refiner=bounded", "target.smoothing=0.2"],
    "rld-supervised-eta": ["target.combine=eta"],
    "no-sim-speaker": ["target.sim_speaker=false"],
    "no-sim-ctx": ["target.sim_ctx=false"],
    "bounded-no-sim-speaker": ["target.refiner=bounded", "target.sim_speaker=false"],
    "optimiser": ["optim.weight_decay=0", "optim.patience=null"],
    "dialoguernn": ["model.backbone=dialoguernn", RNN],
    "dialoguernn-lcm": ["model.backbone=dialoguernn", RNN, "target.name=lcm"],
    "dialoguegcn": ["model.backbone=dialoguegcn", GCN],
    "dialoguegcn-lcm": ["model.backbone=dialoguegcn", GCN, "target.name=lcm", "modalities=[t,a]"],
    "dag-erc": ["model.backbone=dag-erc", DAG],
    "dag-erc-no-sim-ctx": ["model.backbone=dag-erc", DAG, "target.sim_ctx=false"],
}


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """A tiny corpus with annotator votes and a few context-only utterances, so every key also meets those."""
    corpus = make_corpus(sizes={"train": 8, "dev": 4, "test": 4}, max_len=6)
    rng = np.random.default_rng(0)
    for i, u in enumerate(corpus.utterances()):
        other = corpus.labels[int(rng.integers(len(corpus.labels)))]
        u.votes = {u.label: 2} if other == u.label else {u.label: 2, other: 1}
        if i % 7 == 3:
            u.label = None  # context-only
    return prepare(tmp_path_factory.mktemp("every-key") / "features", corpus, modalities=("text", "audio"))


def _config(case: str, features: Path | None = None) -> TrainConfig:
    text_file = str(features / "synth" / "text-synth.h5") if features is not None else "text-synth.h5"
    return load_config(TrainConfig, None, [*BASE, *(o.replace("{text_file}", text_file) for o in CASES[case])])


@pytest.mark.parametrize("case", CASES)
def test_every_key_trains_alone_and_in_a_group(features, tmp_path, case):
    config = _config(case, features)
    alone = run_training(config, tmp_path / "alone", features, progress=False, threads=1)
    assert alone["status"] == "complete" and alone["epochs_run"] == 1
    twins = [config, dataclasses.replace(config, seed=config.seed + 1)]
    group = train_group(twins, [tmp_path / "group" / str(c.seed) for c in twins], features, progress=False, threads=1)
    assert [r["status"] for r in group] == ["complete", "complete"]
    assert [r["epochs_run"] for r in group] == [1, 1]


def _leaves(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and key != "features" and not key.endswith("backbone_options"):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_cases_cover_every_key():
    """Every key of TrainConfig and every option of every backbone is off its default in some case."""
    load_builtin_backbones()
    default = _leaves(to_dict(TrainConfig()))
    changed: set[str] = set()
    for case in CASES:
        config = _config(case)
        changed |= {k for k, v in _leaves(to_dict(config)).items() if v != default[k]}
        options = backbone_options(config.model)
        defaults = type(options)()
        changed |= {f"{config.model.backbone}.{f.name}" for f in dataclasses.fields(options)
                    if getattr(options, f.name) != getattr(defaults, f.name)}
    wanted = set(default) - {"model.backbone_options"}  # its entries are listed per backbone
    wanted |= {f"{name}.{f.name}" for name, cls in BACKBONES.items() for f in dataclasses.fields(cls.Options)}
    assert wanted - changed == set()
