"""YAML configs validated into dataclasses, with key=value overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmemolr.config import ConfigError, dump_yaml, load_config, parse_overrides
from mmemolr.paths import REPO_ROOT
from mmemolr.train.config import TrainConfig

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_file_validates(path):
    config = load_config(TrainConfig, path)
    # The paper's optimiser, except where docs/training.md records a choice made on the dev split.
    chosen_on_dev = {"emorynlp": (5e-4, 1e-5), "meld": (2e-4, 1e-3)}
    lr, l2 = chosen_on_dev.get(path.stem, (1e-4, 3e-4))
    assert config.optim.lr == pytest.approx(lr) and config.optim.weight_decay == pytest.approx(l2)
    assert config.model.dropout == 0.5 and config.optim.batch_dialogues == 16
    assert config.corpus == path.stem


def test_per_corpus_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"meld", "iemocap", "emorynlp"}


def test_overrides():
    config = load_config(TrainConfig, REPO_ROOT / "configs/meld.yaml",
                         ["optim.lr=1e-3", "model.hidden=64", "modalities=t,a", "target.name=onehot", "optim.patience=null"])
    assert config.optim.lr == 1e-3 and config.model.hidden == 64 and config.modalities == ["t", "a"]
    assert config.target.name == "onehot" and config.optim.patience is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", r"unknown key 'optim.lrr' \(did you mean 'optim.lr'\?\)"),
        ("optim.max_epoch=3", r"unknown key 'optim.max_epoch' \(did you mean 'optim.max_epochs'\?\)"),
        ("model.hidden=big", r"model.hidden: expected an integer, got 'big'"),
        ("target.refiner=sideways", r"target.refiner: 'sideways' is not one of"),
        ("optim.max_epochs=1.5", r"optim.max_epochs: expected an integer, got 1.5"),
        ("target.sim_ctx=maybe", r"target.sim_ctx: expected true or false"),
        ("model.emotion_speaker=next", r"model.emotion_speaker: 'next' is not one of"),
        ("nonsense", r"must look like key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, REPO_ROOT / "configs/meld.yaml", [override])


def test_unknown_target_is_named():
    from mmemolr.train.config import check_train_config

    config = load_config(TrainConfig, REPO_ROOT / "configs/meld.yaml", ["target.name=softmax"])
    with pytest.raises(ConfigError, match=r"target.name='softmax' is not a known target \(lcm, ls, onehot, rld, votes\)"):
        check_train_config(config)


def test_unknown_key_in_file_names_file(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("corpus: meld\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'learning_rate'"):
        load_config(TrainConfig, path)


def test_yaml_is_safe_loaded(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("corpus: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(TrainConfig, path)


def test_dump_round_trip(tmp_path: Path):
    config = load_config(TrainConfig, None, ["optim.patience=3"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(TrainConfig, path) == config
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


@pytest.mark.parametrize(
    "override, message",
    [  # each of these once passed validation (a NaN fails no `x <= 0` check) or crashed later
        ("optim.lr=inf", r"optim.lr: expected a finite number, got 'inf'"),
        ("optim.lr=.inf", r"optim.lr: expected a finite number, got inf"),
        ("optim.weight_decay=nan", r"optim.weight_decay: expected a finite number, got 'nan'"),
        ("target.eta=nan", r"target.eta: expected a finite number"),
        ("target.eta=inf", r"target.eta: expected a finite number"),
        ("target.eta=-4", r"target.eta must be at least 0, got -4.0"),
        ("target.smoothing=nan", r"target.smoothing: expected a finite number"),
        ("optim.lr=0", r"optim.lr must be greater than 0, got 0.0"),
        ("optim.patience=0", r"optim.patience must be at least 1, got 0"),
        ("seed=-1", r"seed must be in \[0, 4294967295\], got -1"),
        ("seed=100000000000000000000", r"seed must be in \[0, 4294967295\], got 100000000000000000000"),
        ("model.hidden=0", r"model.hidden must be at least 1, got 0"),
        ("model.dropout=1", r"model.dropout must be in \[0, 1\), got 1.0"),
        ("target.smoothing=1", r"target.smoothing must be in \[0, 1\), got 1.0"),
        ("modalities=t,t", r"modalities: modality 'text' is given twice in t,t; list each modality once"),
        ("modalities=[a,audio]", r"modality 'audio' is given twice"),
    ],
)
def test_bad_numbers_and_modalities_are_refused(override, message):
    from mmemolr.train.config import check_train_config

    with pytest.raises(ConfigError, match=message):
        check_train_config(load_config(TrainConfig, REPO_ROOT / "configs/meld.yaml", [override]))


def test_every_numeric_key_has_a_range():
    """One declarative table covers every int/float key, so a new key cannot skip its range check."""
    from mmemolr.config import Interval, numeric_keys
    from mmemolr.train.config import RANGES

    assert set(RANGES) == set(numeric_keys(TrainConfig))
    for spec in RANGES.values():
        Interval(spec).bounds()  # parses


def test_range_check_covers_configs_built_in_code():
    import dataclasses

    from mmemolr.train.config import check_train_config

    config = load_config(TrainConfig, None)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, lr=float("nan")))
    with pytest.raises(ConfigError, match="optim.lr must be a finite number, got nan"):
        check_train_config(config)


def test_interval_notation():
    from mmemolr.config import Interval

    assert 0.0 in Interval("[0, 1)") and 1.0 not in Interval("[0, 1)") and 0.0 not in Interval("(0, inf)")
    assert Interval("(0, inf)").describe() == "greater than 0" and Interval("[1, inf)").describe() == "at least 1"
    assert Interval("(0, 1)").describe() == "in (0, 1)"


def test_a_key_twice_in_a_yaml_file_is_an_error(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("corpus: meld\noptim:\n  lr: 0.001\n  patience: 3\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: invalid YAML: .*key 'lr' appears twice \(lines 3 and 5\); keep one"):
        load_config(TrainConfig, path)
    path.write_text("corpus: meld\ncorpus: iemocap\n")
    with pytest.raises(ConfigError, match=r"key 'corpus' appears twice \(lines 1 and 2\)"):
        load_config(TrainConfig, path)


def test_every_field_documents_itself_and_the_measurement_that_keeps_it():
    """The docs tables are generated from the fields (mmemolr.docs_tables): each needs both texts."""
    import dataclasses

    from mmemolr.model.backbones import BACKBONES, load_builtin_backbones
    from mmemolr.train.config import ModelConfig, OptimConfig, TargetConfig

    load_builtin_backbones()
    classes = [TrainConfig, ModelConfig, TargetConfig, OptimConfig, *(b.Options for b in BACKBONES.values())]
    for cls in classes:
        for f in dataclasses.fields(cls):
            if cls is TrainConfig and f.name in ("model", "target", "optim"):
                continue
            assert f.metadata.get("doc") and f.metadata.get("why"), f"{cls.__name__}.{f.name}"


# A removed key at its "off" value (what older run folders hold) loads; another value is refused with a
# message naming the key and what replaced it. Sections and backbone options alike.
REMOVED_OFF = {"model": {"skip": False, "bidirectional": False, "input_proj": None, "attention": True,
                         "availability_input": True},
               "target": {"gradient": "both", "lcm_alpha": 4.0, "sim_temperature": 1.0, "rld_anchor": 0.0},
               "optim": {"grad_clip": None, "ema_decay": None, "bucket": True, "eval_batch_dialogues": 64}}


def test_removed_keys_at_their_off_values_still_load():
    from mmemolr.config import from_dict, to_dict
    from mmemolr.train.config import upgrade_stored_config

    stored = to_dict(TrainConfig())
    for section, keys in REMOVED_OFF.items():
        stored[section].update(keys)
    stored["model"]["backbone_options"] = {"dialoguernn": {"listener": False, "bidirectional": True,
                                                           "emotion_attention": True, "party_size": 150},
                                           "dialoguegcn": {"input_dropout": 0.0}, "dag_erc": {"mlp_layers": 2}}
    config = from_dict(TrainConfig, upgrade_stored_config(stored))
    expected = TrainConfig()
    expected.model.backbone_options = {"dialoguernn": {}, "dialoguegcn": {}, "dag_erc": {}}
    assert config == expected


@pytest.mark.parametrize("override, message", [
    ("model.skip=true", r"model.skip=True was removed \(the classifier reading e_t ⊕ u_t: MELD dev W-F1 −1.16 .*\); "
                        r"the classifier reads e_t alone, as in the paper; drop the key"),
    ("target.gradient=detach", r"target.gradient='detach' was removed \(.*\); the KL gradient flows into the "
                               r"target module and the predictor"),
    ("optim.ema_decay=0.998", r"optim.ema_decay=0.998 was removed \(a moving average of the weights: .*\); the "
                              r"weights as trained are scored"),
    ("model.backbone_options.dialoguegcn.input_dropout=0.5",
     r"model.backbone_options.dialoguegcn.input_dropout=0.5 was removed \(0.7 on MELD: .*\); no dropout on the input"),
])
def test_removed_keys_at_other_values_are_refused_naming_the_key_and_its_replacement(override, message):
    from mmemolr.train.config import check_train_config

    backbone = ["model.backbone=dialoguegcn"] if "dialoguegcn" in override else []
    with pytest.raises(ConfigError, match=message):
        check_train_config(load_config(TrainConfig, None, [*backbone, override]))


def test_the_removed_keys_are_listed_once():
    from mmemolr.docs_tables import removed_keys

    listed = [key for key, _ in removed_keys()]
    assert len(listed) == len(set(listed)) >= 16
    assert {f"{s}.{k}" for s, keys in REMOVED_OFF.items() for k in keys} <= set(listed)
