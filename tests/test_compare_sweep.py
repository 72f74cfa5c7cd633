"""``mmemolr compare`` end to end with real (tiny) trainings: resume, parallel workers, Ray, failures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import matplotlib.image as mpimg
import pytest
from train_helpers import make_corpus, prepare

from mmemolr.cli.main import main
from mmemolr.compare import LocalExecutor, RayExecutor, make_plan, run_config, run_sweep
from mmemolr.compare.aggregate import ERROR_FILE, run_status
from mmemolr.compare.executors import RunTask, execute_task
from mmemolr.compare.preflight import preflight
from mmemolr.compare.sweep import _store_files, sweep_tasks, write_plan
from mmemolr.train import rundir
from mmemolr.train.run import run_training

TINY = ["optim.max_epochs=3", "optim.patience=3", "model.hidden=16", "model.label_dim=8",
        "optim.batch_dialogues=8"]


@pytest.fixture
def features(tmp_path) -> Path:
    corpus = make_corpus(sizes={"train": 16, "dev": 6, "test": 6}, max_len=5)
    return prepare(tmp_path / "features", corpus, modalities=("text", "audio"))


def _plan(features: Path, **kwargs):
    kwargs.setdefault("seeds", 2)
    return make_plan("synth", features, overrides=TINY, **kwargs)


def test_cli_sweep_table_figures_and_resume(features, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["compare", "--corpus", "synth", "--features-dir", str(features), "--seeds", "2", "--out", str(out),
            "--no-progress", "--threads", "1", *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "T+A" in printed and "Δ W-F1 RLD − one-hot" in printed
    assert "12 run(s) trained, 0 already complete (skipped), 0 failed" in printed
    table = json.loads((out / "table.json").read_text())
    assert table["runs_complete"] == 12 and table["rows"] == ["T", "A", "T+A"]
    # every cell is the mean over the seeds of exactly what each run folder says
    for cell in table["cells"]:
        runs = [r for r in table["runs"] if r["row"] == cell["row"] and r["column"] == cell["column"]]
        values = [json.loads((out / r["name"] / "results.json").read_text())["test"]["weighted_f1"] for r in runs]
        assert cell["weighted_f1"]["values"] == pytest.approx(values)
    run = json.loads((out / "t+a_rld_seed1" / "results.json").read_text())
    assert run["config"]["modalities"] == ["t", "a"] and run["config"]["seed"] == 1
    assert run["config"]["target"]["name"] == "rld" and run["config"]["optim"]["max_epochs"] == 3
    for name in ("comparison", "per_class_f1", "confusion", "tsne", "refinement"):
        image = mpimg.imread(out / "figures" / f"{name}.png")
        assert image.ndim == 3 and image.shape[0] > 200
    for name in ("table.md", "table.csv", "sweep.json"):
        assert (out / name).stat().st_size > 0
    # `report` after `compare` keeps the figures compare drew (t-SNE included) instead of drawing them again
    tsne = (out / "figures" / "tsne.png").stat().st_mtime_ns
    assert main(["report", str(out)]) == 0
    assert "tsne.png (inputs unchanged since it was drawn: kept)" in capsys.readouterr().out
    assert (out / "figures" / "tsne.png").stat().st_mtime_ns == tsne

    # a rerun trains nothing and keeps every run folder as it is
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert main([*argv, "--no-figures"]) == 0
    assert "0 run(s) trained, 12 already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")} == stamps

    # another config into the same folder is refused before anything runs
    assert main([*argv, "optim.max_epochs=4"]) == 1
    assert "holds a run with another config (differs in optim.max_epochs)" in capsys.readouterr().err

    # dry run lists the status of every run
    assert main([*argv, "--dry-run"]) == 0
    assert capsys.readouterr().out.count("complete") == 12


def test_killed_sweep_resumes(features, tmp_path):
    plan = _plan(features, modalities="t", seeds=1)
    out = tmp_path / "sweep"
    write_plan(plan, out)
    # one run killed after its first epoch, the other never started
    name = "t_rld_seed0"

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(run_config(plan, name), out / name, features, progress=False, threads=1,
                     on_epoch_end=stop)
    assert run_status(out / name) == "partial" and run_status(out / "t_onehot_seed0") == "pending"
    report = run_sweep(plan, out, LocalExecutor(1, threads=1), progress=False)
    assert sorted(report.ran) == ["t_onehot_seed0", "t_rld_seed0"] and not report.failures
    metrics = json.loads((out / name / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2, 3]  # epoch 1 kept from the killed run, 2 and 3 resumed
    assert not (out / name / rundir.LAST).exists()
    assert run_sweep(plan, out, LocalExecutor(1, threads=1), progress=False).ran == []


def test_parallel_workers_match_serial(features, tmp_path):
    plan = _plan(features, modalities="t", seeds=2)
    serial = run_sweep(plan, tmp_path / "serial", LocalExecutor(1, threads=1), progress=False)
    parallel = run_sweep(plan, tmp_path / "parallel", LocalExecutor(2), progress=False)
    assert not serial.failures and not parallel.failures and len(parallel.ran) == 4
    for a, b in zip(serial.table["runs"], parallel.table["runs"]):
        assert a["name"] == b["name"] and a["status"] == b["status"] == "complete"
        assert a["best_epoch"] == b["best_epoch"]
        assert a["test"]["weighted_f1"] == pytest.approx(b["test"]["weighted_f1"], abs=1e-3)


def test_failed_run_is_reported_counted_and_retried(features, tmp_path, capsys, monkeypatch):
    import mmemolr.train.run as train_run

    real = train_run.run_training

    def flaky(config, run_dir, *args, **kwargs):  # a run that fails while training (out of memory, say)
        if Path(run_dir).name == "a_rld_seed0":
            raise RuntimeError("CUDA out of memory")
        return real(config, run_dir, *args, **kwargs)

    monkeypatch.setattr(train_run, "run_training", flaky)
    out = tmp_path / "sweep"
    argv = ["compare", "--corpus", "synth", "--features-dir", str(features), "--seeds", "1", "--out", str(out),
            "--no-progress", "--no-figures", *TINY]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "5 run(s) trained, 0 already complete (skipped), 1 failed" in captured.out
    assert "a_rld_seed0: RuntimeError: CUDA out of memory" in captured.err
    assert "out of memory" in (out / "a_rld_seed0" / ERROR_FILE).read_text()
    assert run_status(out / "a_rld_seed0") == "failed"
    monkeypatch.setattr(train_run, "run_training", real)
    assert main(argv) == 0
    assert "1 run(s) trained, 5 already complete (skipped), 0 failed" in capsys.readouterr().out
    assert not (out / "a_rld_seed0" / ERROR_FILE).exists()


def test_doomed_runs_stop_the_sweep_before_anything_trains(features, tmp_path, capsys):
    from train_helpers import write_features

    from mmemolr.compare.preflight import SweepCheckError
    from mmemolr.corpus import load_prepared

    corpus = load_prepared("synth", features)
    audio = next((features / "synth").glob("audio-*.h5"))
    plan = _plan(features, seeds=1)
    # After planning: the audio features are replaced by a file where no training utterance has a vector.
    train_ids = [u.id for u in corpus.utterances("train")]
    audio.unlink()
    write_features(corpus, features / "synth", "audio", missing=train_ids, file_name=audio.name)
    out = tmp_path / "sweep"
    with pytest.raises(SweepCheckError) as err:
        run_sweep(plan, out, LocalExecutor(1, threads=1), progress=False)
    message = str(err.value)
    assert "1 problem(s) found before training, so nothing was trained" in message
    assert f"none of the {len(train_ids)} training utterances has audio features (missing)" in message
    assert "runs a_onehot_seed0, a_rld_seed0, t+a_onehot_seed0, … (4 runs)" in message
    assert not out.exists()  # not even the sweep folder

    # Each kind of problem: an invalid config (grouped over the runs it affects), a missing file.
    audio.unlink()
    eta = make_plan("synth", features, preset="eta", modalities="t", seeds=1, overrides=TINY)
    bad = dataclasses.replace(eta, base_overrides=[*eta.base_overrides, "model.hidden=0"])
    problems = preflight(bad, out)
    assert len(problems) == 1 and "model.hidden must be at least 1" in problems[0] and "(6 runs)" in problems[0]
    assert any("holds no complete audio feature file" in p for p in preflight(plan, out))
    # The CLI: the sweep stops with the list and exit status 1; --dry-run shows the same problems.
    argv = ["compare", "--corpus", "synth", "--features-dir", str(features), "--seeds", "1", "--out", str(out),
            "--modalities", "t", "--no-progress", *TINY, "model.dropout=2"]
    assert main(argv) == 1
    assert "model.dropout must be in [0, 1)" in capsys.readouterr().err and not out.exists()


def test_finished_run_trained_on_other_features_is_caught(features, tmp_path):
    from train_helpers import write_features

    from mmemolr.corpus import load_prepared

    plan = _plan(features, modalities="t", seeds=1)
    out = tmp_path / "sweep"
    assert not run_sweep(plan, out, LocalExecutor(1, threads=1), progress=False).failures
    text = next((features / "synth").glob("text-*.h5"))
    text.unlink()  # re-extracted with another encoder: same path, other weights
    path = write_features(load_prepared("synth", features), features / "synth", "text", file_name=text.name)
    with h5py.File(path, "r+") as f:
        f.attrs["weights_sha256"] = "e" * 64
    problems = preflight(plan, out)
    assert len(problems) == 2 and all("is complete but was trained on other features" in p for p in problems)
    assert "weights SHA-256 eeeeeeeeeeee" in problems[0]


def test_ray_executor(features, tmp_path):
    ray = pytest.importorskip("ray")
    plan = _plan(features, modalities="t", seeds=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run_sweep(plan, tmp_path / "sweep", RayExecutor("auto", cpus_per_run=1), progress=False)
    finally:
        ray.shutdown()
    assert not report.failures and sorted(report.ran) == ["t_onehot_seed0", "t_rld_seed0"]
    for name in report.ran:
        assert run_status(tmp_path / "sweep" / name) == "complete"
        assert (tmp_path / "sweep" / name / "predictions.csv").exists()


def test_remote_worker_without_the_sweep_folder_sends_files_back(features, tmp_path):
    plan = _plan(features, modalities="t", seeds=1)
    out = tmp_path / "sweep"
    write_plan(plan, out)
    (task, _), _ = sweep_tasks(plan, out)
    remote_view = RunTask(**{**task.__dict__, "sweep_dir": str(tmp_path / "not-mounted"), "ship_files": True,
                                       "threads": 1})
    outcome = execute_task(remote_view)
    assert outcome.status == "complete" and not (out / task.name).exists()
    assert {"results.json", "predictions.csv", "test_states.npz", "best.pt", "config.yaml"} <= set(outcome.files)
    assert "last.pt" not in outcome.files
    _store_files(out / task.name, outcome.files)
    assert run_status(out / task.name) == "complete"


def test_plan_errors_name_the_problem(features, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no complete visual feature file"):
        _plan(features, modalities="t,v")
    with pytest.raises(ValueError, match="unknown modality 'x'"):
        _plan(features, modalities="t,x")
    with pytest.raises(ValueError, match="model.hidden must be at least 1"):
        make_plan("synth", features, overrides=["model.hidden=0"])
    with pytest.raises(FileNotFoundError, match="no prepared corpus"):
        make_plan("nope", features)
    with pytest.raises(ValueError, match="target\\(s\\) votes train on annotator votes, and corpus 'synth' records none"):
        make_plan("synth", features, modalities="t", targets=["onehot", "votes"], overrides=TINY)
    assert "votes" not in make_plan("synth", features, preset="label-enhancement", modalities="t", overrides=TINY).rows
    for bad in (["--jobs", "0"], ["--threads", "0"], ["--features", "t"]):
        assert main(["compare", "--corpus", "synth", "--features-dir", str(features), *bad,
                     "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()


def test_run_configs_are_those_of_mmemolr_train(features):
    from mmemolr.cli.main import build_parser
    from mmemolr.cli.train import resolve_config

    plan = make_plan("synth", features, preset="ablation", modalities="t,a", seeds=[3], overrides=TINY)
    args = build_parser().parse_args(["train", "--corpus", "synth", "--features-dir", str(features), "--modalities",
                                      "t,a", "--target", "rld", "--no-sim-ctx", "--seed", "3", *TINY])
    assert run_config(plan, "t+a_rld-no-sim-ctx_seed3") == resolve_config(args)


def test_runs_are_not_resumed_or_reused_on_other_feature_contents(features, tmp_path, capsys):
    import h5py

    plan = _plan(features, modalities="t", seeds=1)
    out = tmp_path / "sweep"
    write_plan(plan, out)

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # one run partly trained
        run_training(run_config(plan, "t_rld_seed0"), out / "t_rld_seed0", features, progress=False, threads=1,
                     on_epoch_end=stop)
    text = next((features / "synth").glob("text-*.h5"))
    original = text.read_bytes()
    with h5py.File(text, "r+") as f:  # re-extracted into the same path: same ids, dim and corpus, other values
        f["features"][...] = f["features"][...] + 1.0
    with pytest.raises(ValueError, match=r"t_rld_seed0 was started on other feature files than it reads now: "
                                         r".*text-synth.h5: content checksum was .*delete .*t_rld_seed0 \(or choose "
                                         r"another --out\)"):
        run_sweep(plan, out, LocalExecutor(1, threads=1), progress=False)
    assert not (out / "t_onehot_seed0").exists()  # refused before anything ran

    text.write_bytes(original)
    assert not run_sweep(plan, out, LocalExecutor(1, threads=1), progress=False).failures
    with h5py.File(text, "r+") as f:
        f["features"][...] = f["features"][...] + 1.0
    argv = ["compare", "--corpus", "synth", "--features-dir", str(features), "--seeds", "1", "--modalities", "t",
            "--out", str(out), "--no-progress", "--no-figures", "--threads", "1", *TINY]
    assert main(argv) == 1  # complete runs trained on the old contents are not silently kept in the table
    assert "t_onehot_seed0 was started on other feature files" in capsys.readouterr().err


def test_hint_names_the_flag_and_two_encoders_get_two_sweeps(features, tmp_path, capsys, monkeypatch):
    from train_helpers import write_features

    from mmemolr.corpus import load_prepared

    write_features(load_prepared("synth", features), features / "synth", file_name="text-other.h5", seed=3)
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t", "--seeds", "1",
            "--dry-run", *TINY]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "choose one with --features t=FILE (e.g. --features t=text-other.h5)" in err and "features.t=" not in err
    # train takes the choice as a config override, and says so
    assert main(["train", "--corpus", "synth", "--features-dir", str(features), "--quiet", *TINY]) == 1
    assert "choose one with features.t=FILE (e.g. features.t=text-other.h5)" in capsys.readouterr().err
    assert main([*argv, "--features", "t=nope.h5"]) == 1
    assert "given as --features t=nope.h5 does not exist" in capsys.readouterr().err
    # each encoder's sweep has its own default folder
    for name in ("text-other", "text-synth"):
        assert main([*argv, "--features", f"t={name}.h5"]) == 0
        assert f"in {Path('runs', 'compare', f'synth-table6-{name}')}" in capsys.readouterr().out
    from mmemolr.cli.compare import default_sweep_dir

    assert default_sweep_dir("iemocap", "ablation", {}) == Path("runs", "compare", "iemocap-ablation")
    assert default_sweep_dir("m", "table6", {"visual": "/x/visual-a b.h5", "t": "/y/text-mpnet.h5"}) == Path(
        "runs", "compare", "m-table6-text-mpnet-visual-a_b")


# ---------------------------------------------------------------- the context-free floor (generalization)


@pytest.mark.parametrize("signal, low, high", [(8.0, 0.9, 1.0), (0.0, 0.0, 0.6)])
def test_floor_reads_the_label_from_the_utterance_alone(tmp_path, signal, low, high):
    """Known answers: features that carry the label give a floor near 100%, label-free ones near chance;
    C is the grid's best on dev and the test figures are that C's."""
    from sklearn.linear_model import LogisticRegression

    from mmemolr.compare.floor import C_GRID, fit_floor
    from mmemolr.train.data import load_training_data
    from mmemolr.train.metrics import classification_metrics

    corpus = make_corpus(sizes={"train": 60, "dev": 20, "test": 20}, max_len=6)
    root = prepare(tmp_path / "features", corpus, signal=signal)
    data = load_training_data("synth", ["t"], {}, root, availability_input=False).data
    floor = fit_floor(data)
    assert low <= floor["test"]["weighted_f1"] <= high and low <= floor["valid"]["weighted_f1"] <= high
    scores = [g["valid_weighted_f1"] for g in floor["grid"]]
    assert [g["C"] for g in floor["grid"]] == list(C_GRID)
    assert floor["C"] == C_GRID[scores.index(max(scores))] and floor["valid"]["weighted_f1"] == max(scores)
    x = data.features[:-1].numpy()
    rows = {s: ([r for d in data.split(s) for r in d.rows], [y for d in data.split(s) for y in d.labels])
            for s in ("train", "test")}
    model = LogisticRegression(C=floor["C"], max_iter=3000).fit(x[rows["train"][0]], rows["train"][1])
    test = classification_metrics(rows["test"][1], model.predict(x[rows["test"][0]]), data.labels)
    assert floor["test"]["weighted_f1"] == pytest.approx(test["weighted_f1"])


def test_generalization_sweep_prints_the_floor_and_dev_beside_the_table(features, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["compare", "--corpus", "synth", "--features-dir", str(features), "--preset", "generalization",
            "--backbones", "emolr,dialoguegcn", "--modalities", "t,a", "--seeds", "2", "--out", str(out),
            "--no-progress", "--threads", "1", "--no-figures", *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    floor = json.loads((out / "floor.json").read_text())
    assert floor["inputs"]["modalities"] == ["a", "t"] and set(floor["inputs"]["content_sha256"]) == {"t", "a"}
    table = json.loads((out / "table.json").read_text())
    assert table["floor"] == floor
    header = next(ln for ln in printed.splitlines() if ln.startswith("Backbone"))
    assert "one-hot dev W-F1" in header and "RLD dev W-F1" in header
    row = next(ln for ln in printed.splitlines() if ln.startswith("context-free floor (LR)"))
    assert f"{100 * floor['test']['weighted_f1']:.2f}" in row and f"{100 * floor['valid']['weighted_f1']:.2f}" in row
    # the dev column is the mean over seeds of each run's validation W-F1 at its selected epoch
    for cell in table["cells"]:
        runs = [r for r in table["runs"] if r["row"] == cell["row"] and r["column"] == cell["column"]]
        assert cell["valid_weighted_f1"]["mean"] == pytest.approx(
            sum(r["valid"]["weighted_f1"] for r in runs) / len(runs))
    below = [c for c in table["cells"] if c["valid_weighted_f1"]["mean"] <= floor["valid"]["weighted_f1"]]
    verdict = next(ln for ln in printed.splitlines() if "above the floor on dev" in ln)
    assert verdict == "Every cell is above the floor on dev." if not below else all(
        f"{c['row']} {c['column']}" in verdict for c in below)
    csv_floor = next(ln for ln in (out / "table.csv").read_text().splitlines() if ln.startswith("context-free"))
    assert csv_floor.split(",")[1] == str(round(100 * floor["test"]["weighted_f1"], 6))

    # cached: a rerun reads floor.json; a floor computed from other inputs is computed again
    stamp = (out / "floor.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "floor.json").stat().st_mtime_ns == stamp
    stale = {**floor, "inputs": {**floor["inputs"], "content_sha256": {"t": "0" * 64, "a": "0" * 64}},
             "C": -1.0}
    (out / "floor.json").write_text(json.dumps(stale))
    assert main(["report", str(out)]) == 0
    assert json.loads((out / "floor.json").read_text()) == floor
    image = mpimg.imread(out / "figures" / "comparison.png")
    assert image.ndim == 3

    # report needs only the run folders: without the feature files it keeps the floor it has
    for path in features.glob("synth/*.h5"):
        path.unlink()
    assert main(["report", str(out)]) == 0
    assert "the context-free floor is not recomputed" in capsys.readouterr().err
    assert json.loads((out / "table.json").read_text())["floor"] == floor


def test_other_presets_have_no_floor(features, tmp_path):
    out = tmp_path / "sweep"
    run_sweep(_plan(features, modalities="t", seeds=1, targets=["onehot"]), out, LocalExecutor(jobs=1), progress=False)
    assert not (out / "floor.json").exists()
    assert json.loads((out / "table.json").read_text())["floor"] is None
