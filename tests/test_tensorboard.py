"""``--tensorboard``: the event files, read back with TensorBoard's own reader, hold exactly the values of
metrics.csv (each epoch once, also after a kill -9 and a resume), the hparams with the final metrics, and
the learned-confusion image; in a sweep every run logs from the worker process that trains it."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_helpers import make_corpus, prepare

from mmemolr.cli.main import main
from mmemolr.train import tblog

try:
    import tensorboard  # noqa: F401
except ImportError:  # scripts/setup.sh installs it: in CI its absence is a failure
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("pip install 'mmemolr[tensorboard]'", allow_module_level=True)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

LABELS = ["neutral", "joy", "anger", "sadness"]  # four labels: every refinement diagnostic is defined
TINY = ["model.hidden=8", "model.label_dim=4", "optim.lr=0.01", "optim.batch_dialogues=4"]

# Train, and die by SIGKILL while epoch 2's last.pt is being written: metrics.csv, best.pt and the
# TensorBoard events already hold epoch 2, last.pt is epoch 1's, so the rerun trains epoch 2 again.
_DIES = """
import os, signal, sys
from mmemolr.train import run
from mmemolr.cli.main import main
save = run.save_checkpoint
def save_or_die(obj, path):
    if path.name == "last.pt" and obj["state"]["epoch"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    save(obj, path)
run.save_checkpoint = save_or_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tb")
    return prepare(root / "features", make_corpus(sizes={"train": 12, "dev": 6, "test": 6}, max_len=5, labels=LABELS),
                   modalities=("text", "audio"))


def read_log(folder: Path):
    """TensorBoard's event reader over one run's log folder (every event kept)."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(folder), size_guidance={ea.IMAGES: 0, ea.SCALARS: 0})
    acc.Reload()
    return acc


def logged(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def f32(x: float) -> float:
    return float(np.float32(x))


def assert_log_is_metrics(folder: Path, run_dir: Path, refining: bool = True) -> None:
    """Every number of metrics.csv is in the log once, at its epoch. TensorBoard scalars are float32: each
    value equals metrics.json's (the float64 that metrics.csv prints with 6 decimals) rounded to float32,
    bit for bit, and so lies within 5e-7 (the csv's rounding) + 2^-24 relative (float32's) of the csv cell."""
    acc = read_log(folder)
    with open(run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    history = json.loads((run_dir / "metrics.json").read_text())
    assert [int(r["epoch"]) for r in rows] == [h["epoch"] for h in history]
    columns = [c for c in rows[0] if c != "epoch"]
    assert {"train_loss", "valid_loss", "valid_weighted_f1", "seconds"} <= set(columns)
    assert ("valid_refine_specificity" in columns) == refining
    assert set(acc.Tags()["scalars"]) >= {tblog.tag(c) for c in columns}
    for column in columns:
        events = logged(acc, tblog.tag(column))
        expected = [(int(r["epoch"]), r[column]) for r in rows if r[column] != ""]
        assert [step for step, _ in events] == [step for step, _ in expected], column  # each epoch once
        for (step, value), (_, cell), h in zip(events, expected, history):
            assert value == f32(h[column]), (column, step)
            assert abs(value - float(cell)) <= 5e-7 + 2 ** -24 * abs(value), (column, step, cell)


def _train_args(features: Path, out: Path, tb: Path, *extra: str, epochs: int = 4) -> list[str]:
    return ["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t,a", "--target", "rld",
            "--device", "cpu", "--out", str(out), "--tensorboard", str(tb), "--quiet", *extra,
            f"optim.max_epochs={epochs}", f"optim.patience={epochs}", *TINY]


def test_events_hold_metrics_csv_exactly_after_kill_and_resume(features, tmp_path):
    run_dir, tb = tmp_path / "run", tmp_path / "tb"
    env = {**os.environ, "PYTHONPATH": str(Path(tblog.__file__).parents[2])}
    killed = subprocess.run([sys.executable, "-c", _DIES, *_train_args(features, run_dir, tb)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # The killed process logged epoch 2, which the rerun trains again: a log that only appended would
    # hold epoch 2 twice.
    assert [step for step, _ in logged(read_log(tb / "run"), "loss/train")] == [1, 2]
    assert not (run_dir / "results.json").exists()

    assert main(_train_args(features, run_dir, tb)) == 0
    assert_log_is_metrics(tb / "run", run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    acc = read_log(tb / "run")
    for split in ("valid", "test"):
        for key in ("weighted_f1", "accuracy", "macro_f1"):
            assert logged(acc, f"hparam/{split}_{key}") == [(results["best_epoch"], f32(results[split][key]))]
    assert "refinement/learned_confusion_test" in acc.Tags()["images"]
    image = acc.Images("refinement/learned_confusion_test")
    assert len(image) == 1 and image[0].width > 100 and image[0].step == results["best_epoch"]
    assert _session_hparams(acc) == {"modalities": "t+a", "target": "rld", "backbone": "emolr", "seed": 0}


def _session_hparams(acc) -> dict:
    from tensorboard.plugins.hparams import metadata

    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = metadata.parse_session_start_info_plugin_data(content)
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def test_a_sweep_logs_from_its_workers_with_the_keys_that_differ(features, tmp_path):
    out, tb = tmp_path / "sweep", tmp_path / "tb"
    args = ["compare", "--corpus", "synth", "--features-dir", str(features), "--preset", "ablation", "--seeds", "2",
            "--jobs", "2", "--out", str(out), "--tensorboard", str(tb), "--no-figures", "--no-progress",
            "optim.max_epochs=2", "optim.patience=2", *TINY]
    assert main(args) == 0
    names = sorted(p.parent.name for p in out.glob("*/results.json"))
    assert len(names) == 8 and sorted(p.name for p in tb.iterdir()) == names
    for name in names:
        assert_log_is_metrics(tb / name, out / name, refining="onehot" not in name)
        config = json.loads((out / name / "results.json").read_text())["config"]
        # the ablation's rows differ in the target and its Sim_speaker and Sim_ctx switches, nothing else
        assert _session_hparams(read_log(tb / name)) == {
            "modalities": "t+a", "target": config["target"]["name"], "backbone": "emolr", "seed": config["seed"],
            "target.sim_speaker": str(config["target"]["sim_speaker"]).lower(),
            "target.sim_ctx": str(config["target"]["sim_ctx"]).lower()}
    # Rerun: every run is complete and its log up to date, so nothing is written again ...
    stamps = {p: p.stat().st_mtime_ns for p in tb.rglob("events.out.tfevents.*")}
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in tb.rglob("events.out.tfevents.*")} == stamps
    # ... and a log that was lost is written again from the run folder.
    name = names[0]
    for path in (tb / name).iterdir():
        path.unlink()
    assert main(args) == 0
    assert logged(read_log(tb / name), "hparam/test_weighted_f1")


def test_a_batched_group_logs_every_run(features, tmp_path):
    out, tb = tmp_path / "group", tmp_path / "tb"
    assert main(_train_args(features, out, tb, "--seeds", "0,1", epochs=3)) == 0
    assert sorted(p.name for p in tb.iterdir()) == ["seed0", "seed1"]
    for seed in (0, 1):
        acc = read_log(tb / f"seed{seed}")
        with open(out / f"seed{seed}" / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        history = json.loads((out / f"seed{seed}" / "metrics.json").read_text())
        assert [(int(r["epoch"]), f32(h["train_loss"])) for r, h in zip(rows, history)] == logged(acc, "loss/train")
        assert _session_hparams(acc)["seed"] == seed


def test_a_missing_tensorboard_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(RuntimeError, match=r"pip install 'mmemolr\[tensorboard\]'"):
        tblog.require()
