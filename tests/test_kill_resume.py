"""Kill -9 at a fixed point of each long-running command, rerun it, and compare the result with an
uninterrupted run bit for bit (#16). The kill is SIGKILL from inside the process at a deterministic
point (no cleanup, no ``finally``), so the tests do not depend on timing.

The killed commands run in processes forked from a fork server that has imported torch and mmemolr but
never run them (so forking is safe, and each kill costs no fresh interpreter start). Extraction has its
own: tests/test_extract_runner.py (test_hard_kill_leaves_a_partial_file_that_resumes,
test_hard_kill_during_overwrite_keeps_the_finished_file).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from train_helpers import assert_same_run, make_corpus, prepare, untimed

from mmemolr.cli.main import main
from mmemolr.fileio import atomic_path
from mmemolr.store import partial_path

TRAIN_OVERRIDES = ["corpus=synth", "modalities=[t,a]", "target.name=rld", "device=cpu", "model.hidden=8",
                   "model.label_dim=4", "optim.lr=0.01", "optim.max_epochs=3", "optim.batch_dialogues=4"]


def run_killed(target, *args) -> None:
    """Run ``target(*args)`` in a child process; it must die by SIGKILL at the point it chooses."""
    context = multiprocessing.get_context("forkserver")
    # Takes effect if this session starts the fork server (the extraction runner may have started it).
    context.set_forkserver_preload(["mmemolr.train.run", "mmemolr.train.batched", "mmemolr.cli.main"])
    child = context.Process(target=target, args=args)
    child.start()
    child.join(timeout=300)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == -signal.SIGKILL, f"the child ended with {child.exitcode}, not killed where planned"


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def features(tmp_path) -> Path:
    return prepare(tmp_path / "features", make_corpus(sizes={"train": 12, "dev": 4, "test": 4}, max_len=5),
                   modalities=("text", "audio"))


# --- train ------------------------------------------------------------------------------------------------

def _train_killed(kill: str, run_dir: str, features: str) -> None:
    """Train, dying at ``kill``:

    - mid-checkpoint: epoch 2's last.pt half written (its temporary file on disk, not renamed), so last.pt is
      epoch 1's while metrics and best.pt already have epoch 2: the rerun must redo epoch 2 exactly;
    - mid-results: everything trained and tested, results.json half written: the rerun finishes from last.pt.
    """
    import mmemolr.train.run as run
    from mmemolr.config import load_config
    from mmemolr.train.config import TrainConfig

    save_checkpoint = run.save_checkpoint

    def save(obj, path):
        if kill == "mid-checkpoint" and path.name == "last.pt" and obj["state"]["epoch"] == 2:
            with atomic_path(path) as tmp:
                torch.save(obj, tmp)
                _sigkill()
        save_checkpoint(obj, path)

    def write_results(run_dir, results):
        with atomic_path(run_dir / "results.json") as tmp:
            tmp.write_text(json.dumps(results)[:100])
            _sigkill()

    run.save_checkpoint = save
    if kill == "mid-results":
        run.rundir.write_results = write_results
    run.run_training(load_config(TrainConfig, None, TRAIN_OVERRIDES), Path(run_dir), Path(features), progress=False)


def test_train_killed_twice_and_rerun_equals_an_uninterrupted_run(features, tmp_path):
    """Killed mid-checkpoint, resumed and killed again mid-results, resumed: the same run as one never killed."""
    from mmemolr.config import load_config
    from mmemolr.train.config import TrainConfig
    from mmemolr.train.run import run_training

    config = load_config(TrainConfig, None, TRAIN_OVERRIDES)
    run_training(config, tmp_path / "whole", features, progress=False)
    killed = tmp_path / "killed"
    for kill in ("mid-checkpoint", "mid-results"):
        run_killed(_train_killed, kill, str(killed), str(features))
        assert (killed / "last.pt").exists() and not (killed / "results.json").exists(), kill
        assert any(killed.glob(".*.tmp")), kill  # the kill came mid-write
    run_training(config, killed, features, progress=False)
    assert_same_run(tmp_path / "whole", killed)


# --- train --seeds: a batched group -----------------------------------------------------------------------

GROUP_KILLS = ("between-next", "between-apply", "mid-apply", "between-finish")


def _group_argv(features: Path, out: Path, seeds: tuple[str, str] = ("--seeds", "0,1")) -> list[str]:
    return ["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t,a", "--target", "rld",
            *seeds, "--out", str(out), "--quiet", "--threads", "1", "model.hidden=8", "model.label_dim=4",
            "optim.lr=0.01", "optim.batch_dialogues=4", "optim.max_epochs=3", "optim.patience=3"]


def _group_killed(kill: str, argv: list[str]) -> None:
    """``mmemolr train --seeds 0,1`` dying at ``kill`` (mmemolr.train.commit's two phases, epoch 2):

    - between-next: seed 0's next.pt written, seed 1's not (phase 1 cut short: the resume undoes it);
    - between-apply: epoch 2 applied to seed 0 (last.pt at epoch 2), not to seed 1 (at epoch 1 with its next.pt:
      the resume finishes the commit);
    - mid-apply: seed 1's best.pt and metrics of epoch 2 written, its next.pt not yet renamed to last.pt;
    - between-finish: after the last epoch, seed 0 tested and written out, seed 1 not.
    """
    from mmemolr.train import batched, commit, rundir

    write_next, apply_next, finish_run = commit.write_next, commit.apply_next, batched.finish_run

    def write(run_dir, last, best, token, members):
        if kill == "between-next" and last["state"]["epoch"] == 2 and run_dir.name == "seed1":
            _sigkill()
        write_next(run_dir, last, best, token, members)

    def apply(run_dir, best, history):
        if len(history) == 2 and run_dir.name == "seed1":
            if kill == "between-apply":
                _sigkill()
            if kill == "mid-apply":
                rundir.write_metrics(run_dir, history)
                _sigkill()
        apply_next(run_dir, best, history)

    def finish(config, run_dir, *args):
        if kill == "between-finish" and run_dir.name == "seed1":
            _sigkill()
        return finish_run(config, run_dir, *args)

    commit.write_next, commit.apply_next, batched.finish_run = write, apply, finish
    main(argv)


def _epoch(run_dir: Path, name: str = "last.pt") -> int:
    return torch.load(run_dir / name, weights_only=True)["state"]["epoch"]


def _landed(kill: str, s0: Path, s1: Path) -> bool:
    """The run folders hold what a kill at ``kill`` leaves."""
    if kill == "between-next":
        return (s0 / "next.pt").exists() and not (s1 / "next.pt").exists() and _epoch(s1) == 1
    if kill == "between-apply":
        return _epoch(s0) == 2 and not (s0 / "next.pt").exists() and _epoch(s1) == 1 and _epoch(s1, "next.pt") == 2
    if kill == "mid-apply":
        return (_epoch(s0) == 2 and _epoch(s1) == 1 and (s1 / "next.pt").exists()
                and len(json.loads((s1 / "metrics.json").read_text())) == 2)
    return (s0 / "results.json").exists() and not (s1 / "results.json").exists() and _epoch(s1) == 3


def test_a_batched_group_killed_anywhere_resumes_to_the_uninterrupted_results(features, tmp_path):
    """SIGKILL at four points of a group's epoch commit and finish, each resumed: every run folder equals the
    uninterrupted group's bit for bit. Resumed alone (``mmemolr train`` on one run's folder), a run of a group
    killed between its runs' writes finishes the commit and trains on."""
    assert main(_group_argv(features, tmp_path / "whole")) == 0
    where = {}
    for kill in GROUP_KILLS:
        cut = tmp_path / kill
        run_killed(_group_killed, kill, _group_argv(features, cut))
        where[kill] = _landed(kill, cut / "seed0", cut / "seed1")
        assert main(_group_argv(features, cut)) == 0
        for seed in ("seed0", "seed1"):
            assert_same_run(tmp_path / "whole" / seed, cut / seed)
    assert all(where.values()), where  # every kill landed where planned
    alone = tmp_path / "alone"
    run_killed(_group_killed, "between-apply", _group_argv(features, alone))
    assert main(_group_argv(features, alone / "seed1", ("--seed", "1"))) == 0
    assert not (alone / "seed0" / "next.pt").exists() and _epoch(alone / "seed0") == 2  # its commit was finished
    rows, whole = (json.loads((d / "seed1" / "metrics.json").read_text()) for d in (alone, tmp_path / "whole"))
    assert untimed(rows[:2]) == untimed(whole[:2]) and len(rows) == 3


# --- compare ----------------------------------------------------------------------------------------------

def _compare_argv(features: Path, out: Path) -> list[str]:
    return ["compare", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t", "--seeds", "1",
            "--out", str(out), "--no-progress", "--no-figures", "--threads", "1", "optim.max_epochs=2",
            "optim.patience=2", "model.hidden=8", "model.label_dim=4", "optim.batch_dialogues=4"]


def _compare_killed(argv: list[str]) -> None:
    """``mmemolr compare`` whose second training dies after its first epoch (the first one is complete)."""
    import mmemolr.train.run as run

    run_training, started = run.run_training, []

    def killed_in_second(*args, **kwargs):
        started.append(1)
        if len(started) == 2:
            kwargs["on_epoch_end"] = lambda epoch, row: _sigkill()
        return run_training(*args, **kwargs)

    run.run_training = killed_in_second
    main(argv)


def test_compare_killed_and_rerun_equals_an_uninterrupted_sweep(features, tmp_path):
    assert main(_compare_argv(features, tmp_path / "whole")) == 0
    killed = tmp_path / "killed"
    run_killed(_compare_killed, _compare_argv(features, killed))
    assert sum((killed / name / "results.json").exists() for name in ("t_onehot_seed0", "t_rld_seed0")) == 1
    assert main(_compare_argv(features, killed)) == 0
    for name in ("t_onehot_seed0", "t_rld_seed0"):
        assert_same_run(tmp_path / "whole" / name, killed / name)
    for name in ("table.json", "sweep.json"):
        whole = untimed(json.loads((tmp_path / "whole" / name).read_text()))
        again = untimed(json.loads((killed / name).read_text()))
        assert json.dumps(whole).replace(str(tmp_path / "whole"), "X") == json.dumps(again).replace(str(killed), "X")
    assert (tmp_path / "whole" / "table.csv").read_text() == (killed / "table.csv").read_text()


# --- features merge ---------------------------------------------------------------------------------------

def _datasets(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        out = {name: f[name][()] for name in ("features", "ids", "available", "done")}
        out.update({f"errors/{k}": f["errors"][k][()] for k in f["errors"]})
        out["attrs"] = {k: v for k, v in f.attrs.items() if k not in ("created", "completed")}
    return out


def _same_file(a: Path, b: Path) -> None:
    x, y = _datasets(a), _datasets(b)
    assert x.keys() == y.keys()
    for key in x:
        if key == "attrs":
            assert {k: str(v) for k, v in x[key].items()} == {k: str(v) for k, v in y[key].items()}
        else:
            assert np.array_equal(x[key], y[key]), key


def _merge_killed(argv: list[str]) -> None:
    """``mmemolr features merge`` dying after the first shard's rows are on disk."""
    from mmemolr.store import FeatureWriter

    write = FeatureWriter.write

    def write_then_die(self, ids, vectors):
        write(self, ids, vectors)
        _sigkill()

    FeatureWriter.write = write_then_die
    main(argv)


def test_merge_killed_keeps_the_old_output_and_rerun_equals_an_uninterrupted_merge(tmp_path):
    from train_helpers import write_features

    from mmemolr.corpus import save_prepared
    from mmemolr.store import FeatureWriter, read_features

    corpus = make_corpus(sizes={"train": 6, "dev": 2, "test": 2})
    save_prepared(corpus, tmp_path / "synth")
    ids = corpus.utterance_ids()
    whole = read_features(write_features(corpus, tmp_path, "text", file_name="whole.h5", missing=ids[3:4]))
    shards = []
    for k, part in enumerate((ids[: len(ids) // 2], ids[len(ids) // 2 :])):
        attrs = {key: whole.attrs[key] for key in ("corpus_name", "corpus_fingerprint", "modality", "extractor",
                                                   "dim", "model_id")}
        with FeatureWriter(tmp_path / f"s{k}.h5", part, {**attrs, "shard": f"{k}/2"}) as w:
            rows = whole.rows_for(part)
            good = [uid for uid, a in zip(part, whole.available[rows]) if a]
            w.write(good, whole.features[whole.rows_for(good)])
            for uid in part:
                if uid not in good:
                    w.fail(uid, "missing", "synthetic failure")
        shards.append(str(tmp_path / f"s{k}.h5"))
    argv = ["features", "merge", *shards, "--corpus", str(tmp_path / "synth")]
    assert main([*argv, "--out", str(tmp_path / "clean.h5")]) == 0

    out = tmp_path / "merged.h5"
    shutil.copy(whole.path, out)  # the output of an earlier merge
    old = out.read_bytes()
    run_killed(_merge_killed, [*argv, "--out", str(out)])
    assert out.read_bytes() == old and partial_path(out).exists()  # the old output was never deleted
    assert main([*argv, "--out", str(out)]) == 0
    assert not partial_path(out).exists()
    _same_file(tmp_path / "clean.h5", out)
