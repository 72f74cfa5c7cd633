"""Batched groups (mmemolr.train.batched): each run of a group is its single-run twin.

The twins are trained with the single-run code (mmemolr.train.loop.train_epoch, run_training) from the
same seed, nothing patched: the same initial weights, the same batches (its own members of each length
bucket, the buckets in the epoch's schedule: mmemolr.fuse.batch_plan), the same dropout masks (drawn from
the run's own dropout generator: mmemolr.model.dropout). The step-level checks run in float64; in float32
a run is bit-identical whichever partners its group has.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from train_helpers import assert_same_run, make_corpus, prepare, untimed

from mmemolr.config import load_config
from mmemolr.model.dropout import dropout_generator
from mmemolr.train import batched
from mmemolr.train.batched import GroupTrainer, build_stack, group_runs, restrict, train_group
from mmemolr.train.build import build_model
from mmemolr.train.checkpoint import load_checkpoint
from mmemolr.train.config import TrainConfig
from mmemolr.train.data import load_training_data
from mmemolr.train.loop import train_epoch
from mmemolr.train.run import make_optimizer, run_training

# A mix of modality subsets and seeds, one group.
MEMBERS = [(0, ["t"]), (1, ["t", "a"]), (2, ["a", "v"]), (3, ["v", "t", "a"])]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    corpus = make_corpus(sizes={"train": 14, "dev": 6, "test": 6}, max_len=6)
    return prepare(tmp_path_factory.mktemp("batched") / "features", corpus, modalities=("text", "audio", "visual"),
                   dim=5)


def _config(seed: int, modalities: list[str], *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [
        "corpus=synth", f"modalities=[{','.join(modalities)}]", f"seed={seed}", "device=cpu", "model.hidden=6",
        "model.label_dim=4", "model.dropout=0.3", "model.input_dropout=0.2", "optim.lr=0.01",
        "optim.batch_dialogues=4", "optim.max_epochs=3", *extra])


def _twin_epochs(config: TrainConfig, features: Path, epochs: int):
    """The single-run path in float64: per-step losses of the first epoch, the model after ``epochs``."""
    prepared = load_training_data("synth", config.modalities, {}, features, True)
    data = prepared.data
    data.features = data.features.double()
    torch.manual_seed(config.seed)
    generator, dropout = torch.Generator().manual_seed(config.seed), dropout_generator(config.seed, "cpu")
    model = build_model(config, data.input_dim, len(data.labels)).double()
    optimizer = make_optimizer(model, config)
    steps: list[float] = []
    loss = model.target.loss
    model.target.loss = lambda out, labels, votes=None: _record(steps, loss(out, labels, votes))
    for epoch in range(epochs):
        train_epoch(model, data, data.split("train"), optimizer, config.optim, generator, torch.device("cpu"),
                    epoch=epoch, dropout=dropout)
        if epoch == 0:
            first = list(steps)
    return first, model, data


def _record(steps: list[float], value: torch.Tensor) -> torch.Tensor:
    steps.append(float(value.detach()))
    return value


def _group(configs: list[TrainConfig], features: Path):
    union = load_training_data("synth", batched.union_modalities(configs), {}, features, True)
    union.data.features = union.data.features.double()
    runs = []
    for config in configs:
        codes = list(config.modalities)
        torch.manual_seed(config.seed)
        width = sum(union.data.dims[c] for c in codes) + len(codes)
        model = build_model(config, width, len(union.data.labels)).double()
        runs.append(batched._Run(config, Path("unused"), codes, {}, model, torch.Generator().manual_seed(config.seed),
                                 dropout_generator(config.seed, "cpu")))
    trainer = GroupTrainer(runs, build_stack(runs, union, torch.device("cpu")), torch.device("cpu"))
    return trainer, union


@pytest.mark.parametrize("target,emotion_speaker", [
    ("onehot", "previous"), ("ls", "previous"), ("lcm", "previous"), ("rld", "previous"),
    ("onehot", "updated"), ("rld", "updated")])
def test_each_run_of_a_group_matches_its_single_run_twin(features, target, emotion_speaker):
    extra = [f"target.name={target}", f"model.emotion_speaker={emotion_speaker}"]
    configs = [_config(seed, mods, *extra) for seed, mods in MEMBERS]
    epochs = 3
    trainer, union = _group(configs, features)
    steps: list[torch.Tensor] = []
    data = union.data
    active = list(range(len(configs)))
    for epoch in range(epochs):
        trainer.train_epoch(active, data, data.features, data.split("train"),
                            on_step=(lambda losses: steps.append(losses)) if epoch == 0 else None)
        for run in trainer.runs:
            run.state["epoch"] += 1
    group_steps = torch.stack(steps)  # (steps, R)
    for r, config in enumerate(configs):
        twin_steps, twin, twin_data = _twin_epochs(config, features, epochs)
        assert group_steps.shape[0] == len(twin_steps)
        diff = (group_steps[:, r] - torch.tensor(twin_steps, dtype=torch.float64)).abs().max()
        assert diff < 1e-9, (target, emotion_speaker, r, float(diff))
        mine = build_model(config, twin_data.input_dim, len(twin_data.labels)).double()
        mine.load_state_dict(trainer.stacked.extract(r, trainer.weights))
        batch = next(iter(_dev_batches(twin_data)))
        with torch.no_grad():
            ours = mine.eval().predictor(batch.x, batch.speakers, batch.mask, batch.n_parties).logits
            theirs = twin.eval().predictor(batch.x, batch.speakers, batch.mask, batch.n_parties).logits
        assert torch.allclose(ours, theirs, rtol=1e-8, atol=1e-9), (target, emotion_speaker, r)
        # The weights of the absent modalities' columns never moved from zero.
        full = trainer.weights["predictor.gru_c.weight_ih"][r]
        absent = torch.ones(data.input_dim, dtype=torch.bool)
        absent[trainer.stacked.columns[r]] = False
        assert bool((full[:, :data.input_dim][:, absent] == 0).all())


@pytest.mark.parametrize("backbone,options", [
    ("dialoguernn", {"global_size": 5, "emotion_size": 4, "classifier_hidden": 3}),
    ("dag_erc", {"hidden": 5, "layers": 1})])
def test_other_backbones_draw_their_dropout_masks_in_a_group_as_alone(features, backbone, options):
    """Input and classifier dropout of every batchable backbone: per step the group's losses are the twins'."""
    extra = [f"model.backbone={backbone.replace('_', '-')}", "target.name=rld",
             *(f"model.backbone_options.{backbone}.{k}={v}" for k, v in
               {**options, "dropout": 0.3, "input_dropout": 0.2}.items())]
    configs = [_config(seed, mods, *extra) for seed, mods in MEMBERS]
    trainer, union = _group(configs, features)
    steps: list[torch.Tensor] = []
    trainer.train_epoch(list(range(len(configs))), union.data, union.data.features, union.data.split("train"),
                        on_step=steps.append)
    for r, config in enumerate(configs):
        twin_steps = _twin_epochs(config, features, 1)[0]
        assert (torch.stack(steps)[:, r] - torch.tensor(twin_steps, dtype=torch.float64)).abs().max() < 1e-9


def _dev_batches(data):
    from mmemolr.fuse import iterate_batches

    return iterate_batches(data, data.split("dev"), 64, None, True)


def test_the_input_blocks_are_found_where_the_input_enters(features):
    """Where the input columns enter: the GRUs read u ⊕ s (first), DAG-ERC's MLP H^0 ⊕ .. ⊕ H^L ⊕ u (last)."""
    emolr = batched.input_blocks(lambda w: build_model(_config(0, ["t"]), w, 3), 6)
    assert emolr["predictor.gru_c.weight_ih"] == (1, 0) and emolr["predictor.att.weight"] == (1, 0)
    dag = ["model.backbone=dag-erc", "model.backbone_options.dag-erc={hidden: 4, layers: 1, dropout: 0}"]
    blocks = batched.input_blocks(lambda w: build_model(_config(0, ["t"], *dag), w, 3), 6)
    assert blocks["predictor.input_layer.weight"] == (1, 0)
    assert blocks["predictor.mlp.0.weight"] == (1, 8)  # after H^0 ⊕ H^1 (2 x hidden 4)
    # And a group of DAG-ERC runs on mixed subsets reproduces each run (checked on build).
    _group([_config(s, m, *dag) for s, m in MEMBERS], features)


def test_grouping_rule():
    configs = [_config(0, ["t"]), _config(1, ["a"]), _config(0, ["t"], "target.name=onehot"),
               _config(2, ["t", "a"]), _config(0, ["t"], "optim.lr=0.5")]
    assert group_runs(configs) == [[0, 1, 3], [2], [4]]
    assert group_runs(configs, group_size=2) == [[0, 1], [3], [2], [4]]
    # On CPU (compare --batched) a group does not mix modality subsets; runs of one subset still group.
    assert group_runs([*configs, _config(5, ["t"])], mixed_subsets=False) == [[0, 5], [1], [2], [3], [4]]
    with pytest.raises(ValueError, match="more than seed and modalities"):
        train_group([configs[0], configs[2]], ["a", "b"])


def _best(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "best.pt")


def test_early_stopping_and_outputs_match_single_runs(features, tmp_path):
    """Runs stop at their own epochs; each run folder holds what run_training writes for its twin."""
    configs = [_config(seed, mods, "optim.max_epochs=9", "optim.patience=2", "target.name=rld")
               for seed, mods in MEMBERS]
    dirs = [tmp_path / "group" / f"run{i}" for i in range(len(configs))]
    results = train_group(configs, dirs, features, progress=False)
    epochs = set()
    for config, run_dir, res in zip(configs, dirs, results):
        twin = run_training(config, tmp_path / "single" / run_dir.name, features, progress=False)
        assert res["epochs_run"] == twin["epochs_run"] and res["best_epoch"] == twin["best_epoch"]
        epochs.add(res["epochs_run"])
        ours, theirs = _best(run_dir), _best(tmp_path / "single" / run_dir.name)
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.allclose(ours[key], theirs[key], rtol=1e-4, atol=1e-5), key
        assert res["test"]["confusion_matrix"] == twin["test"]["confusion_matrix"]
        assert set(res) == set(twin) and res["refinement"].keys() == twin["refinement"].keys()
        files = {p.name for p in run_dir.iterdir()}
        assert files == {p.name for p in (tmp_path / "single" / run_dir.name).iterdir()}
        assert "last.pt" not in files
        # evaluate reads the run folder as any other
        from mmemolr.train.inference import compare_metrics, evaluate_run

        assert compare_metrics(res, evaluate_run(run_dir)) == []
    assert len(epochs) > 1, "the test needs runs that stop at different epochs"
    # Rerunning returns the stored results (complete runs are skipped).
    again = train_group(configs, dirs, features, progress=False)
    assert [a["test"] for a in again] == [r["test"] for r in results]


def _dies_in_epoch(n: int, monkeypatch) -> None:
    """GroupTrainer.train_epoch raises KeyboardInterrupt at its n-th call (until ``monkeypatch.undo()``)."""
    calls = {"n": 0}
    original = GroupTrainer.train_epoch

    def dies(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GroupTrainer, "train_epoch", dies)


def test_an_interrupted_group_resumes_and_loses_nothing(features, tmp_path, monkeypatch):
    configs = [_config(seed, mods, "optim.max_epochs=4", "target.name=lcm")
               for seed, mods in MEMBERS[:3]]
    whole = train_group(configs, [tmp_path / "whole" / str(i) for i in range(3)], features, progress=False)
    dirs = [tmp_path / "cut" / str(i) for i in range(3)]
    _dies_in_epoch(3, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_group(configs, dirs, features, progress=False)
    assert all((d / "last.pt").exists() and not (d / "results.json").exists() for d in dirs)
    monkeypatch.undo()
    resumed = train_group(configs, dirs, features, progress=False)
    for a, b, d in zip(whole, resumed, dirs):
        assert a["epochs_run"] == b["epochs_run"] == 4
        assert a["test"]["confusion_matrix"] == b["test"]["confusion_matrix"]
        rows = json.loads((d / "metrics.json").read_text())
        assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
        for x, y in zip(json.loads((tmp_path / "whole" / d.name / "metrics.json").read_text()), rows):
            assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-5)
    # A group's last.pt is run_training's: one run of a group may be resumed alone.
    single_dir = tmp_path / "alone"
    _dies_in_epoch(3, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_group(configs[:1], [single_dir], features, progress=False)
    monkeypatch.undo()
    alone = run_training(configs[0], single_dir, features, progress=False)
    assert alone["test"]["confusion_matrix"] == whole[0]["test"]["confusion_matrix"]


def test_restrict_gives_the_data_a_single_run_loads(features):
    union = load_training_data("synth", ["t", "a", "v"], {}, features, True)
    own = load_training_data("synth", ["v", "t"], {}, features, True)
    cut = restrict(union, ["v", "t"])
    assert torch.equal(cut.data.features, own.data.features)
    assert (cut.data.available == own.data.available).all()
    assert cut.data.dims == own.data.dims and cut.data.modalities == own.data.modalities
    assert dataclasses.asdict(cut.norm).keys() == dataclasses.asdict(own.norm).keys()


def test_cli_train_seeds_and_compare_batched(features, tmp_path, capsys):
    from mmemolr.cli.main import main

    out = tmp_path / "seeds"
    assert main(["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t,a", "--target",
                 "onehot", "--seeds", "0-2", "--out", str(out), "--quiet", "model.hidden=6", "model.label_dim=4",
                 "optim.max_epochs=2", "device=cpu"]) == 0
    printed = capsys.readouterr().out
    assert "3 seeds trained as one batched group" in printed and "over 3 seed(s)" in printed
    for seed in range(3):
        stored = json.loads((out / f"seed{seed}" / "results.json").read_text())
        assert stored["status"] == "complete" and stored["config"]["seed"] == seed
    sweep = tmp_path / "sweep"
    args = ["compare", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t,a",
            "--seeds", "2", "--out", str(sweep), "--no-figures", "--no-progress", "--batched", "--group-size", "4",
            "model.hidden=6", "model.label_dim=4", "optim.max_epochs=2", "device=cpu"]
    assert main(args) == 0
    table = json.loads((sweep / "table.json").read_text())
    runs = [p for p in sweep.iterdir() if (p / "results.json").exists()]
    assert len(runs) == 12  # 3 subsets x 2 targets x 2 seeds, in groups of at most 4 of one target
    assert table
    # Rerun: every run is complete and skipped.
    assert main(args) == 0
    assert "0 run(s) trained, 12 already complete" in capsys.readouterr().out


def _cli_args(features: Path, *extra: str, modalities: str = "t,a") -> list[str]:
    return ["--corpus", "synth", "--features-dir", str(features), "--modalities", modalities, "--threads", "1",
            "model.hidden=6", "model.label_dim=4", "optim.lr=0.01", "optim.batch_dialogues=4", "optim.max_epochs=4",
            "optim.patience=4", "device=cpu", *extra]


def test_a_seed_trains_bit_identically_whatever_its_partners(features, tmp_path):
    """``mmemolr train --seeds 0,1`` and ``--seeds 2,1`` (dropout on): seed 1's run folders are equal bit for bit,
    and equal to its run alone up to rounding; ``compare --batched`` gives the same table in groups of 1 or 2."""
    from mmemolr.cli.main import main

    for seeds in ("0,1", "2,1"):
        assert main(["train", *_cli_args(features), "--target", "rld", "--seeds", seeds, "--out",
                     str(tmp_path / seeds), "--quiet"]) == 0
    assert_same_run(tmp_path / "0,1" / "seed1", tmp_path / "2,1" / "seed1")
    assert not torch.equal(_best(tmp_path / "0,1" / "seed0")["predictor.gru_c.weight_hh"],
                           _best(tmp_path / "2,1" / "seed2")["predictor.gru_c.weight_hh"])
    assert main(["train", *_cli_args(features), "--target", "rld", "--seed", "1", "--out", str(tmp_path / "alone"),
                 "--quiet"]) == 0
    group, alone = _best(tmp_path / "0,1" / "seed1"), _best(tmp_path / "alone")
    for key in group:
        torch.testing.assert_close(group[key], alone[key], rtol=1e-4, atol=1e-5)
    # the same metrics.csv columns, the dev split's refinement diagnostics per epoch included
    group_rows, alone_rows = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "0,1" / "seed1",
                                                                                     tmp_path / "alone"))
    assert [r.keys() for r in group_rows] == [r.keys() for r in alone_rows]
    assert "valid_refine_specificity" in alone_rows[0]
    for g, a in zip(group_rows, alone_rows):
        assert all(g[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5) for k in g if k != "seconds")
    tables, printed = [], []
    for size in ("1", "2"):
        out = tmp_path / f"compare{size}"
        assert main(["compare", *_cli_args(features, modalities="t"), "--seeds", "2", "--out", str(out), "--no-figures",
                     "--no-progress", "--batched", "--group-size", size]) == 0
        tables.append(json.loads(json.dumps(untimed(json.loads((out / "table.json").read_text()))).replace(str(out), "X")))
        printed.append((out / "table.md").read_text())
    assert printed[0] == printed[1]
    # Every metric equal; the refinement diagnostics (means of the refined distributions) up to rounding.
    refinement = [[cell.pop("refinement", None) for cell in table["cells"] + table["runs"]] for table in tables]
    assert tables[0] == tables[1]
    for a, b in zip(*refinement):
        assert a == b or a.keys() == b.keys() and all(a[k] == b[k] or a[k] == pytest.approx(b[k], rel=1e-5) for k in a)


def test_a_last_checkpoint_of_the_former_scheme_is_refused(features, tmp_path, monkeypatch):
    """A last.pt written before runs drew their own batches and dropout masks cannot be resumed into a mix."""
    from mmemolr.train.checkpoint import save_checkpoint

    configs = [_config(seed, ["t"], "optim.max_epochs=2") for seed in (0, 1)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    _dies_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_group(configs, dirs, features, progress=False)
    monkeypatch.undo()
    old = load_checkpoint(dirs[1] / "last.pt")
    del old["format"], old["dropout_generator"]
    save_checkpoint(old, dirs[1] / "last.pt")
    with pytest.raises(ValueError, match="format 1.*Delete it to train this run again"):
        train_group(configs, dirs, features, progress=False)
    with pytest.raises(ValueError, match="format 1"):
        run_training(configs[1], dirs[1], features, progress=False)
