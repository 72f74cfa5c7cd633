"""Batched groups (mmemolr.train.batched): each run of a group is its single-run twin.

The twins are trained with the single-run code (mmemolr.train.loop.train_epoch, run_training) from the
same seed, so the same initial weights; each twin replays the batches its run drew in the group
(mmemolr.fuse.group_plans: its own members of each length bucket, in the group's order); dropout is off
(the twins' dropout masks cannot be drawn alike) and the step-level checks run in float64.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from train_helpers import make_corpus, prepare

from mmemolr.config import load_config
from mmemolr.fuse import batch_plan, collate
from mmemolr.train import batched, loop
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


@pytest.fixture
def replay(monkeypatch):
    """Records the plans each run of a group trains on (by seed: the runs of a test have distinct seeds);
    ``replay.on()`` then makes single-run training take, epoch after epoch, the plans its seed's run took."""
    recorded: dict[int, list[list[list[int]]]] = {}
    group_plans = batched.group_plans

    def recording(lengths, batch_size, generators, bucket=True):
        plans = group_plans(lengths, batch_size, generators, bucket)
        for g, plan in zip(generators, plans):
            recorded.setdefault(g.initial_seed(), []).append(plan)
        return plans

    def replaying(data, dialogues, batch_size, generator=None, bucket=True):
        if generator is None:  # evaluation
            yield from original(data, dialogues, batch_size, generator, bucket)
            return
        batch_plan([len(d) for d in dialogues], batch_size, generator, bucket)  # the same draws as alone
        for idx in recorded[generator.initial_seed()].pop(0):
            yield collate(data, [dialogues[i] for i in idx])

    original = loop.iterate_batches
    monkeypatch.setattr(batched, "group_plans", recording)

    class Replay:
        plans = recorded

        @staticmethod
        def on() -> None:
            monkeypatch.setattr(loop, "iterate_batches", replaying)

    return Replay


def _config(seed: int, modalities: list[str], *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [
        "corpus=synth", f"modalities=[{','.join(modalities)}]", f"seed={seed}", "device=cpu", "model.hidden=6",
        "model.label_dim=4", "model.dropout=0", "model.input_dropout=0", "optim.lr=0.01",
        "optim.batch_dialogues=4", "optim.max_epochs=3", *extra])


def _twin_epochs(config: TrainConfig, features: Path, epochs: int):
    """The single-run path in float64: per-step losses of the first epoch, the model after ``epochs``."""
    prepared = load_training_data("synth", config.modalities, {}, features, True)
    data = prepared.data
    data.features = data.features.double()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(config, data.input_dim, len(data.labels)).double()
    optimizer = make_optimizer(model, config)
    steps: list[float] = []
    loss = model.target.loss
    model.target.loss = lambda out, labels: _record(steps, loss(out, labels))
    for epoch in range(epochs):
        train_epoch(model, data, data.split("train"), optimizer, config.optim, generator, torch.device("cpu"))
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
        runs.append(batched._Run(config, Path("unused"), codes, {}, model, torch.Generator().manual_seed(config.seed)))
    trainer = GroupTrainer(runs, build_stack(runs, union, torch.device("cpu")), torch.device("cpu"))
    return trainer, union


@pytest.mark.parametrize("target", ["onehot", "ls", "lcm", "rld"])
@pytest.mark.parametrize("emotion_speaker", ["previous", "updated"])
def test_each_run_of_a_group_matches_its_single_run_twin(features, target, emotion_speaker, replay):
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
    group_steps = torch.stack(steps)  # (steps, R)
    replay.on()
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


def test_early_stopping_and_outputs_match_single_runs(features, tmp_path, replay):
    """Runs stop at their own epochs; each run folder holds what run_training writes for its twin."""
    configs = [_config(seed, mods, "optim.max_epochs=9", "optim.patience=2", "target.name=rld")
               for seed, mods in MEMBERS]
    dirs = [tmp_path / "group" / f"run{i}" for i in range(len(configs))]
    results = train_group(configs, dirs, features, progress=False)
    replay.on()
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


def test_an_interrupted_group_resumes_and_loses_nothing(features, tmp_path, monkeypatch):
    configs = [_config(seed, mods, "optim.max_epochs=4", "target.name=lcm")
               for seed, mods in MEMBERS[:3]]
    whole = train_group(configs, [tmp_path / "whole" / str(i) for i in range(3)], features, progress=False)
    dirs = [tmp_path / "cut" / str(i) for i in range(3)]
    calls = {"n": 0}
    original = GroupTrainer.train_epoch

    def dies_in_epoch_3(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GroupTrainer, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_group(configs, dirs, features, progress=False)
    assert all((d / "last.pt").exists() and not (d / "results.json").exists() for d in dirs)
    monkeypatch.setattr(GroupTrainer, "train_epoch", original)
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
    calls["n"] = 0
    monkeypatch.setattr(GroupTrainer, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_group(configs[:1], [single_dir], features, progress=False)
    monkeypatch.setattr(GroupTrainer, "train_epoch", original)
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


# A training process that SIGKILLs itself (kill -9: no cleanup, no finally) when it is about to write its
# n-th last.pt: with n = runs + 1, just after every run's first epoch was recorded and saved.
_DIES = """
import os, signal, sys
from mmemolr.train import batched
from mmemolr.cli.main import main
calls = {"n": 0}
save = batched.save_checkpoint
def save_or_die(obj, path):
    calls["n"] += 1
    if calls["n"] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    save(obj, path)
batched.save_checkpoint = save_or_die
sys.exit(main(sys.argv[2:]))
"""


def test_a_killed_group_resumes_to_the_uninterrupted_results(features, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from mmemolr.cli.main import main

    def args(out: Path) -> list[str]:
        return ["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t,a", "--target",
                "rld", "--seeds", "0,1", "--out", str(out), "--quiet", "--threads", "1", "model.hidden=6",
                "model.label_dim=4", "optim.max_epochs=3", "optim.patience=3", "device=cpu"]

    assert main(args(tmp_path / "whole")) == 0
    env = {**os.environ, "PYTHONPATH": str(Path(batched.__file__).parents[2])}
    killed = subprocess.run([sys.executable, "-c", _DIES, "3", *args(tmp_path / "cut")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cut = tmp_path / "cut"
    for seed in (0, 1):
        state = load_checkpoint(cut / f"seed{seed}" / "last.pt")["state"]
        assert state["epoch"] == 1 and not (cut / f"seed{seed}" / "results.json").exists()
    assert main(args(cut)) == 0
    for seed in (0, 1):
        a, b = tmp_path / "whole" / f"seed{seed}", cut / f"seed{seed}"
        ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
        assert ra["test"] == rb["test"] and ra["best_epoch"] == rb["best_epoch"]
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        assert [r["epoch"] for r in mb] == [1, 2, 3]
        for x, y in zip(ma, mb):
            assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-6)
            assert x["valid_loss"] == pytest.approx(y["valid_loss"], rel=1e-6)
        best_a, best_b = _best(a), _best(b)
        for key in best_a:
            assert torch.equal(best_a[key], best_b[key]), key
